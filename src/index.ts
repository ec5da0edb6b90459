// Public API of streamlm: re-exports only.
export { loadModel, Model, type LoadOptions } from './model.js';
export { Session, type SessionOptions, type CacheStats } from './session.js';
export { generate, type GenerateOptions, type GeneratedToken, type GenerationStats } from './generate/generate.js';
export { Sampler, type SamplerOptions } from './generate/sampler.js';
export { DecodeStepper, type DecodeOptions, type DecodeStep, type DecodeStats, type FinishReason } from './generate/stepper.js';
export { parsePolicy, type CachePolicy, POLICY_FORMS } from './cache/policy.js';
export { DEFAULT_CACHE, DEFAULT_CHAT_CACHE, DEFAULT_PREFILL_CHUNK, DEFAULT_MAX_NEW_TOKENS } from './defaults.js';
export { evalStream, type StreamEvalOptions, type StreamEvalResult } from './eval/ppl.js';
export { StreamlmError } from './errors.js';
export type { HParams } from './models/config.js';
export { startServer, type ServerOptions, type RunningServer } from './server/http.js';
export { Engine, type EngineOptions } from './server/engine.js';
export type { ChatMessage } from './chat/template.js';
export { exportGguf } from './export/gguf.js';
export { compress, type CompressOptions, type CompressReport } from './lowrank/compress.js';
