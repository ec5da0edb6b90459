// Properties shared by test/fuzz.test.ts (a few thousand cases) and bench/fuzz.ts (tens of
// thousands): every parser given hostile bytes or JSON either returns or throws a StreamlmError /
// ApiError carrying a message; never another exception, a crash or a hang.
import fc from 'fast-check';
import { StreamlmError } from '../../src/errors.js';
import type { ByteSource } from '../../src/platform/types.js';
import { readSafetensorsHeader } from '../../src/runtime/safetensors.js';
import { readGgufHeader } from '../../src/runtime/gguf.js';
import { parseHParams } from '../../src/models/registry.js';
import { decodeSnapshot } from '../../src/cache/snapshot.js';
import { ApiError } from '../../src/server/errors.js';
import { parseChatRequest, parseCompletionRequest } from '../../src/server/validate.js';
import type { Model } from '../../src/model.js';

export function bytesSource(b: Uint8Array): ByteSource {
  return { size: b.length, read: (dest, pos) => { const n = Math.max(0, Math.min(dest.length, b.length - pos)); dest.set(b.subarray(pos, pos + n)); return n; } };
}

/** Runs `f`; a StreamlmError or ApiError with a message is a fine outcome, anything else fails the property. */
export function onlyCleanErrors(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if ((e instanceof StreamlmError || e instanceof ApiError) && e.message.length > 0 && !e.message.includes('\n')) return;
    throw e;
  }
}

const le64 = (n: number): Uint8Array => { const b = new Uint8Array(8); new DataView(b.buffer).setBigUint64(0, BigInt(n), true); return b; };
const cat = (...parts: Uint8Array[]): Uint8Array => { const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0)); let o = 0; for (const p of parts) { out.set(p, o); o += p.length; } return out; };

/** Safetensors files: a length prefix then a JSON header, built from random JSON and random tensor entries. */
const tensorEntry = fc.record({
  dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'I8', 'U8', 'F64'), fc.string()),
  shape: fc.array(fc.oneof(fc.nat(70000), fc.integer(), fc.double()), { maxLength: 5 }),
  data_offsets: fc.array(fc.oneof(fc.nat(1 << 20), fc.integer(), fc.string()), { maxLength: 3 }),
}, { requiredKeys: [] });
const safetensorsFile = fc.tuple(
  fc.oneof(fc.dictionary(fc.string({ maxLength: 12 }), tensorEntry, { maxKeys: 4 }), fc.jsonValue({ maxDepth: 3 })),
  fc.uint8Array({ maxLength: 256 }),
  fc.oneof(fc.constant(0), fc.integer({ min: -64, max: 64 })),
).map(([header, data, lenSkew]) => {
  const json = new TextEncoder().encode(JSON.stringify(header) ?? '');
  return cat(le64(Math.max(0, json.length + lenSkew)), json, data);
});

export const safetensorsProperty = fc.property(fc.oneof(safetensorsFile, fc.uint8Array({ maxLength: 300 })), (b) => {
  onlyCleanErrors(() => readSafetensorsHeader('fuzz.safetensors', bytesSource(b)));
});

/** GGUF: the magic and a version, then random bytes, or a real-looking prefix mutated. */
export const ggufProperty = fc.property(
  fc.tuple(fc.constantFrom(2, 3, 1, 99), fc.uint8Array({ maxLength: 400 }), fc.boolean()),
  ([version, rest, magic]) => {
    const head = cat(new TextEncoder().encode(magic ? 'GGUF' : 'GGUX'), new Uint8Array(new Uint32Array([version]).buffer));
    onlyCleanErrors(() => readGgufHeader('fuzz.gguf', bytesSource(cat(head, rest))));
  },
);

/** config.json: random objects around the keys the families read. */
const configKeys = ['model_type', 'architectures', 'hidden_size', 'num_attention_heads', 'num_hidden_layers', 'intermediate_size', 'vocab_size',
  'num_key_value_heads', 'rope_theta', 'rope_scaling', 'max_position_embeddings', 'rms_norm_eps', 'head_dim', 'hidden_act', 'tie_word_embeddings',
  'sliding_window', 'bos_token_id', 'eos_token_id', 'partial_rotary_factor', 'n_head', 'n_layer', 'd_model', 'alibi', 'parallel_attn'];
const configValue = fc.oneof(fc.integer({ min: -5, max: 70000 }), fc.double(), fc.constantFrom('llama', 'mistral', 'qwen2', 'falcon', 'gpt_neox', 'mpt', 'silu', 'gelu'),
  fc.boolean(), fc.constant(null), fc.array(fc.integer({ min: 0, max: 10 }), { maxLength: 3 }), fc.array(fc.constantFrom('LlamaForCausalLM', 'X'), { maxLength: 2 }),
  fc.dictionary(fc.constantFrom('rope_type', 'type', 'factor', 'original_max_position_embeddings'), fc.oneof(fc.double(), fc.constantFrom('linear', 'dynamic', 'yarn', 'llama3'))));
export const configProperty = fc.property(
  fc.dictionary(fc.constantFrom(...configKeys), configValue),
  (config) => { onlyCleanErrors(() => parseHParams(config, 'config.json')); },
);

/** Snapshots: random bytes and single/multi-byte mutations of a real one, into decode and restore. */
export function snapshotProperty(model: Model, real: Uint8Array): fc.IPropertyWithHooks<[Uint8Array]> {
  const mutated = fc.tuple(fc.array(fc.tuple(fc.nat(real.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(real.length))
    .map(([flips, cut]) => { const b = new Uint8Array(real); for (const [i, x] of flips) b[i] ^= x; return cut > real.length - 8 ? b : b.subarray(0, cut); });
  return fc.property(fc.oneof(mutated, fc.uint8Array({ maxLength: 200 })), (b) => {
    onlyCleanErrors(() => decodeSnapshot(b));
    onlyCleanErrors(() => model.restoreSession(b).close());
  });
}

/** Request bodies of /v1/completions and /v1/chat/completions: any JSON, and near-valid ones. */
const nearRequest = fc.record({
  model: fc.oneof(fc.constant('m'), fc.jsonValue()),
  prompt: fc.oneof(fc.string(), fc.array(fc.integer()), fc.jsonValue()),
  messages: fc.oneof(fc.array(fc.record({ role: fc.oneof(fc.constantFrom('user', 'system', 'assistant'), fc.string()), content: fc.oneof(fc.string(), fc.jsonValue()) }, { requiredKeys: [] }), { maxLength: 3 }), fc.jsonValue()),
  max_tokens: fc.oneof(fc.integer(), fc.double(), fc.jsonValue()), temperature: fc.oneof(fc.double(), fc.jsonValue()),
  top_p: fc.double(), top_k: fc.integer(), stream: fc.jsonValue(), stop: fc.oneof(fc.string(), fc.array(fc.string()), fc.jsonValue()),
  session: fc.oneof(fc.string(), fc.jsonValue()), seed: fc.oneof(fc.integer(), fc.double()), n: fc.integer(),
}, { requiredKeys: [] });
export const requestProperty = fc.property(fc.oneof(nearRequest, fc.jsonValue()), (body) => {
  const limits = { defaultMaxTokens: 16, maxTokens: 1000 };
  onlyCleanErrors(() => parseChatRequest(body, limits));
  onlyCleanErrors(() => parseCompletionRequest(body, limits));
});
