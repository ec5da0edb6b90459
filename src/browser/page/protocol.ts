// Messages between the page (ui.ts) and its engine worker (engine.ts). Types only.
import type { CacheStats } from '../../session.js';
import type { DownloadProgress } from '../download.js';

export interface ChatSettings { cache: string; maxNewTokens: number; temperature: number; topK: number; topP: number; seed: number }

export type ToEngine =
  | { t: 'load'; source: string | File[]; threads?: number; dtype?: 'auto' | 'f32' | 'q8_0' }
  | { t: 'chat'; text: string; settings: ChatSettings }
  | { t: 'stop' }
  | { t: 'reset' }
  | { t: 'ppl'; text: string; policies: string[]; tokens: number }
  /** Speak replies (espeak-ng starts on the first `on`); off also silences the reply being spoken. */
  | { t: 'speech'; on: boolean };

/** Cache occupancy plus memory, for the gauge. */
export interface Gauge extends CacheStats { wasmBytes: number; tokS: number; workerChunks: number[] }

export interface ModelInfo {
  label: string; threads: number; crossOriginIsolated: boolean; weightBytes: number; layers: number; fingerprint: string; loadMs: number;
  /** Draft steps of the MCTP heads loaded beside the model (mctp.safetensors), or null without them. */
  mctpSteps: number | null;
}

export type Turn = { role: 'user' | 'assistant'; text: string; ids?: number[] };

export type FromEngine =
  | { t: 'progress'; p: DownloadProgress }
  | { t: 'loaded'; info: ModelInfo }
  | { t: 'restored'; transcript: Turn[]; gauge: Gauge }
  | { t: 'token'; id: number; text: string; gauge: Gauge }
  | { t: 'done'; ids: number[]; finish: string; gauge: Gauge; prefillTokS: number; decodeTokS: number }
  | { t: 'ppl'; policy: string; done: number; total: number; ppl: number; series: number[] }
  | { t: 'ppl-done' }
  | { t: 'speech-ready'; sampleRate: number }
  /** One block of a reply's audio: mono PCM16 at the sampleRate of speech-ready. */
  | { t: 'audio'; pcm: Int16Array; text: string }
  | { t: 'warning'; message: string }
  | { t: 'error'; message: string };
