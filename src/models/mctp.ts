// MCTP heads (VITA-Audio's multiple cross-modal token prediction modules, EAGLE's draft head): one
// small transformer block, applied K times with shared weights, that drafts the tokens after the
// backbone's next one from its final hidden state. research/mctp_train.py trains it and computes
// the same math in PyTorch; docs/speculative.md says why one shared module fits the size budget.
//
//   g  = hidden input: the backbone's final hidden state after its final norm (step 1), else
//        final_norm(u) of the previous step          e = rmsnorm(embed[token], e_norm)
//   x  = fc_e(e) + fc_h(g) + step_bias[i]
//   x += o(attention(rope(q(n1)), rope(k(n1)), v(n1))),  n1 = rmsnorm(x, attn_norm)
//   x += down(silu(gate(n2)) · up(n2)),                  n2 = rmsnorm(x, ffn_norm)
//   u  = x;  logits = head(final_norm(u))   on the draft vocabulary (the backbone's most frequent
//                                            greedy tokens, rows of its own tied head)
// Attention runs over the module's own K/V: one entry per real position (written by step 1 from
// the backbone's state there and the next real token), kept in a ring for the last `window`
// positions, plus the entries of the draft's own chain, which are dropped after the draft.
import { StreamlmError } from '../errors.js';
import type { Runtime } from '../runtime/runtime.js';
import type { ModelDir } from '../runtime/modeldir.js';
import { readJsonObject } from '../runtime/modeldir.js';
import { readSafetensorsHeader, readTensorBytes, type TensorInfo } from '../runtime/safetensors.js';
import type { HParams } from './config.js';
import { runLinear, type Linear } from './linear.js';
import type { Transformer } from './transformer.js';
import { WeightLoader } from './weights.js';

export const MCTP_FILE = 'mctp.safetensors';
const EMPTY_POS = 0x7fffffff;
/** Chain slots: drafts longer than this are cut. */
export const MCTP_MAX_DRAFT = 64;

/** The `mctp` entry of config.json (or mctp_config.json), as research/mctp_train.py writes it. */
export interface MctpConfig {
  num_steps: number; hidden_size: number; num_heads: number; num_kv_heads: number; head_dim: number;
  intermediate_size: number; window: number; draft_vocab: number; rms_norm_eps: number; rope_theta: number;
}

const INT_FIELDS = ['num_steps', 'hidden_size', 'num_heads', 'num_kv_heads', 'head_dim', 'intermediate_size', 'window', 'draft_vocab'] as const;

/** The heads' config from the model directory, or null when it has none (the file alone is not enough). */
export function mctpConfigOf(md: ModelDir): { cfg: MctpConfig; file: string } | null {
  let raw: unknown = md.config.mctp, file = `${md.configFile} (mctp)`;
  if (raw === undefined && md.files.has('mctp_config.json')) { raw = readJsonObject(md.files, 'mctp_config.json'); file = md.files.path('mctp_config.json'); }
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new StreamlmError('the mctp entry must be an object', { file, field: 'mctp' });
  const o = raw as Record<string, unknown>;
  for (const f of INT_FIELDS) {
    const v = o[f];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new StreamlmError(`must be a positive integer, got ${JSON.stringify(v)}`, { file, field: `mctp.${f}` });
  }
  for (const f of ['rms_norm_eps', 'rope_theta'] as const) {
    if (typeof o[f] !== 'number' || !(o[f] > 0)) throw new StreamlmError(`must be a positive number, got ${JSON.stringify(o[f])}`, { file, field: `mctp.${f}` });
  }
  const cfg = o as unknown as MctpConfig;
  if (cfg.num_heads % cfg.num_kv_heads !== 0) throw new StreamlmError(`num_heads ${cfg.num_heads} is not a multiple of num_kv_heads ${cfg.num_kv_heads}`, { file, field: 'mctp.num_kv_heads' });
  return { cfg, file };
}

/** The module's weights in wasm memory (f32) and its K/V ring. */
interface MctpWeights {
  eNorm: number; attnNorm: number; ffnNorm: number;
  fcE: Linear; fcH: Linear; qkv: Linear; o: Linear; gateUp: Linear; down: Linear; head: Linear;
  stepBias: number;            // (num_steps, H) f32
}

/**
 * Loaded heads plus one K/V state. A drafter `acquire`s the state; a later acquire (another stream
 * drafting) takes it over, and the earlier drafter starts over from its stream's recent positions.
 */
export class MctpHeads {
  /** Real positions kept in the ring: twice the window, so a catch-up batch never overwrites what its own rows see. */
  readonly ring: number;
  readonly nSlots: number;
  readonly draftIds: Int32Array;
  private readonly k: number;
  private readonly v: number;
  private readonly slotPos: number;
  private readonly slotGroup: number;
  private owner = 0;

  private constructor(private readonly rt: Runtime, private readonly net: Transformer, readonly cfg: MctpConfig, private readonly w: MctpWeights, draftIds: Int32Array) {
    this.draftIds = draftIds;
    this.ring = 2 * cfg.window;
    this.nSlots = this.ring + MCTP_MAX_DRAFT;
    const kvDim = cfg.num_kv_heads * cfg.head_dim;
    this.k = rt.alloc(this.nSlots * kvDim * 4);
    this.v = rt.alloc(this.nSlots * kvDim * 4);
    this.slotPos = rt.alloc(this.nSlots * 4);
    this.slotGroup = rt.alloc(this.nSlots * 4);
    rt.i32(this.slotGroup, this.nSlots).fill(0);
    rt.i32(this.slotPos, this.nSlots).fill(EMPTY_POS);
  }

  /** Hidden rows a session keeps for drafting: the window, plus room for a verified draft. */
  get logRows(): number { return this.cfg.window + MCTP_MAX_DRAFT + 1; }

  /**
   * Loads `mctp.safetensors` and the `mctp` config entry beside the model, or returns null when the
   * directory has no `mctp` entry or not the file (a copy made without it, a page that downloaded
   * only the model's own files): the heads are optional, and `--speculate mctp` then says there are
   * none. Checked against the backbone (width, RoPE, a float output head).
   */
  static load(rt: Runtime, net: Transformer, md: ModelDir): MctpHeads | null {
    const found = mctpConfigOf(md);
    if (!found) return null;
    const { cfg, file } = found;
    const hp: HParams = net.hp, H = hp.hiddenSize;
    if (!md.files.has(MCTP_FILE)) return null;
    if (cfg.hidden_size !== H) throw new StreamlmError(`hidden_size ${cfg.hidden_size} differs from the model's ${H}`, { file, field: 'mctp.hidden_size' });
    const pos = hp.position;
    if (pos.kind !== 'rope' || pos.rotaryDim !== cfg.head_dim || pos.rope.type !== 'default' || pos.rope.theta !== cfg.rope_theta) {
      throw new StreamlmError('MCTP heads reuse the backbone\'s RoPE: it must be plain RoPE with rotary dims = mctp.head_dim and the same theta', { file, field: 'mctp.rope_theta' });
    }
    if (hp.norm !== 'rms') throw new StreamlmError('MCTP heads need a backbone with RMSNorm', { file, field: 'mctp' });
    const path = md.files.path(MCTP_FILE);
    const tensors = new Map<string, TensorInfo>(readSafetensorsHeader(path, md.files.open(MCTP_FILE)).tensors.map((t) => [t.name, t]));
    const wl = new WeightLoader(rt, { ...md, config: {}, tensors }, 'f32');
    const { num_heads: nH, num_kv_heads: nKv, head_dim: hd, intermediate_size: F, num_steps: K, draft_vocab: Nd } = cfg;
    const rank = tensors.get('draft_vocab_rank');
    if (!rank || rank.dtype !== 'I32' || rank.shape.length !== 1 || rank.shape[0] < Nd) throw new StreamlmError(`needs an I32 tensor draft_vocab_rank of at least draft_vocab = ${Nd} ids`, { file: path, field: 'draft_vocab_rank' });
    const rankBytes = new Uint8Array(rank.shape[0] * 4);
    readTensorBytes(rank, rankBytes);
    const draftIds = new Int32Array(rankBytes.buffer, 0, Nd).slice();
    if (draftIds.some((id) => id < 0 || id >= hp.vocabSize)) throw new StreamlmError(`draft_vocab_rank holds ids outside the vocabulary [0, ${hp.vocabSize})`, { file: path, field: 'draft_vocab_rank' });
    const sb = wl.embedding('step_bias', K, H);
    if (sb.dtype === 'block') throw new StreamlmError('step_bias must be a float tensor', { file, field: 'step_bias' });
    const w: MctpWeights = {
      eNorm: wl.vector('e_norm.weight', H), attnNorm: wl.vector('attn_norm.weight', H), ffnNorm: wl.vector('ffn_norm.weight', H),
      fcE: wl.linear([{ name: 'fc_e.weight' }], H, null, [H]),
      fcH: wl.linear([{ name: 'fc_h.weight' }], H, null, [H]),
      qkv: wl.linear([{ name: 'q_proj.weight' }, { name: 'k_proj.weight' }, { name: 'v_proj.weight' }], H, null, [nH * hd, nKv * hd, nKv * hd]),
      o: wl.linear([{ name: 'o_proj.weight' }], nH * hd, null, [H]),
      gateUp: wl.linear([{ name: 'gate_proj.weight' }, { name: 'up_proj.weight' }], H, null, [F, F]),
      down: wl.linear([{ name: 'down_proj.weight' }], F, null, [H]),
      stepBias: gatherF32(rt, sb.dtype, sb.table, Array.from({ length: K }, (_, i) => i), H),
      head: draftHead(rt, net, draftIds, file),
    };
    return new MctpHeads(rt, net, cfg, w, draftIds);
  }

  /** Takes the K/V state for a new drafter (forgetting any earlier drafter's positions); returns its ticket. */
  acquire(): number {
    this.rt.i32(this.slotPos, this.nSlots).fill(EMPTY_POS);
    return ++this.owner;
  }

  owns(ticket: number): boolean { return ticket === this.owner; }

  /**
   * Drafts `k` tokens. `hidden` (M × H) holds the backbone's final hidden states of positions
   * p0..p0+M-1, not yet entered, and `next[m]` the token after position p0+m (the last one: the
   * token just chosen). Their rows become real entries; step 1 runs on all of them at once, and
   * steps 2..k chain from the last row on the module's own state and argmax token.
   */
  draft(hidden: Float32Array, next: readonly number[], p0: number, k: number): number[] {
    const { rt, cfg } = this;
    const H = cfg.hidden_size, M = next.length;
    if (M < 1 || hidden.length !== M * H) throw new Error(`MctpHeads.draft: ${hidden.length} hidden floats for ${M} rows`);
    k = Math.min(k, MCTP_MAX_DRAFT);
    const mark = rt.mark();
    try {
      const g = rt.alloc(M * H * 4);
      rt.f32(g, M * H).set(hidden);
      const out: number[] = [];
      let gPtr = g, toks = next, positions = Array.from({ length: M }, (_, m) => p0 + m);
      const last = p0 + M - 1;
      for (let i = 0; i < k; i++) {
        const slots = i === 0 ? positions.map((p) => p % this.ring) : [this.ring + i - 1];
        const r = this.step(gPtr, toks, positions, Math.min(i, cfg.num_steps - 1), slots);
        out.push(r.token);
        gPtr = r.gLast;
        toks = [r.token];
        positions = [last + i + 1];
      }
      return out;
    } finally {
      rt.i32(this.slotPos + this.ring * 4, MCTP_MAX_DRAFT).fill(EMPTY_POS);  // the chain is never real
      rt.release(mark);
    }
  }

  /** One application of the module to rows at `positions`, writing their K/V to `slots`; the last row's draft token and normed state. */
  private step(gIn: number, toks: readonly number[], positions: readonly number[], stepIdx: number, slots: readonly number[]): { token: number; gLast: number } {
    const { rt, cfg, w, net } = this;
    const k = rt.k, H = cfg.hidden_size, M = toks.length;
    const nH = cfg.num_heads, nKv = cfg.num_kv_heads, hd = cfg.head_dim, qDim = nH * hd, kvDim = nKv * hd, qkvDim = qDim + 2 * kvDim;
    const F = cfg.intermediate_size, eps = cfg.rms_norm_eps;
    const lin = (out: number, x: number, l: Linear, m: number): void => runLinear(rt, out, x, l, m, { xq: 0, xs: 0 }, (o, i, ll, mm) => lin(o, i, ll, mm));
    const ids = rt.alloc(M * 4);
    rt.i32(ids, M).set(toks);
    const e = rt.alloc(M * H * 4), x = rt.alloc(M * H * 4), y = rt.alloc(M * H * 4), n = rt.alloc(M * H * 4);
    net.embed(e, ids, M);
    k.rmsnorm(n, e, w.eNorm, M, H, eps);
    lin(x, n, w.fcE, M);
    lin(y, gIn, { ...w.fcH, bias: w.stepBias + stepIdx * H * 4 }, M);
    k.add(x, x, y, M * H);
    // attention over the ring and the chain
    k.rmsnorm(n, x, w.attnNorm, M, H, eps);
    const qkv = rt.alloc(M * qkvDim * 4);
    lin(qkv, n, w.qkv, M);
    const [cos, sin] = net.ropeTable(M, (m) => positions[m], positions[M - 1] + 1);
    k.rope(qkv, qkvDim, cos, sin, M, nH, hd, hd);
    k.rope(qkv + qDim * 4, qkvDim, cos, sin, M, nKv, hd, hd);
    const mem = new Float32Array(rt.memory.buffer), sp = rt.i32(this.slotPos, this.nSlots);
    for (let m = 0; m < M; m++) {
      const src = (qkv + (m * qkvDim + qDim) * 4) / 4;
      mem.copyWithin((this.k + slots[m] * kvDim * 4) / 4, src, src + kvDim);
      mem.copyWithin((this.v + slots[m] * kvDim * 4) / 4, src + kvDim, src + 2 * kvDim);
      sp[slots[m]] = positions[m];
    }
    const qPos = rt.alloc(M * 4);
    rt.i32(qPos, M).set(positions);
    const att = rt.alloc(M * qDim * 4), scratch = rt.alloc(rt.threads * this.nSlots * 4);
    rt.run('attention', [att, qkv, qkvDim, M * qkvDim, this.k, this.v, kvDim, this.slotPos, this.slotGroup, this.nSlots, qPos,
      M, nH, nKv, hd, 1 / Math.sqrt(hd), 0, cfg.window, 0, 0, scratch]);
    lin(y, att, w.o, M);
    k.add(x, x, y, M * H);
    // gated MLP
    k.rmsnorm(n, x, w.ffnNorm, M, H, eps);
    const gu = rt.alloc(M * 2 * F * 4), act = rt.alloc(M * F * 4);
    lin(gu, n, w.gateUp, M);
    k.swiglu(act, gu, M, F);
    lin(y, act, w.down, M);
    k.add(x, x, y, M * H);
    // the backbone's final norm; the draft head on the last row only
    k.rmsnorm(n, x, net.w.finalNorm.w, M, H, net.hp.normEps);
    const gLast = n + (M - 1) * H * 4, Nd = w.head.N;
    const logits = rt.alloc(Nd * 4);
    lin(logits, gLast, w.head, 1);
    const lg = rt.f32(logits, Nd);
    this.captureLogits?.(lg);
    let best = 0;
    for (let i = 1; i < Nd; i++) if (lg[i] > lg[best]) best = i;  // argmax, as the sampler's greedy pick
    return { token: this.draftIds[best], gLast };
  }

  /** Logits of step 1..k on the draft vocabulary, for tests against research/mctp_train.py's reference: see `draft`. */
  draftLogits(hidden: Float32Array, next: readonly number[], p0: number, k: number): { tokens: number[]; logits: Float32Array[] } {
    const logits: Float32Array[] = [];
    const saved = this.captureLogits;
    this.captureLogits = (l) => logits.push(l.slice());
    try {
      return { tokens: this.draft(hidden, next, p0, k), logits };
    } finally {
      this.captureLogits = saved;
    }
  }

  private captureLogits: ((l: Float32Array) => void) | null = null;
}

const EMBED = { f32: 'embed_f32', f16: 'embed_f16', bf16: 'embed_bf16' } as const;

/** Rows `rows` of a (·, dim) table in `dtype`, gathered to f32 by the embedding kernel. */
function gatherF32(rt: Runtime, dtype: 'f32' | 'f16' | 'bf16', table: number, rows: readonly number[], dim: number): number {
  const out = rt.alloc(rows.length * dim * 4);
  const mark = rt.mark();
  const ids = rt.alloc(rows.length * 4);
  rt.i32(ids, rows.length).set(rows);
  rt.k[EMBED[dtype]](out, table, ids, rows.length, dim);
  rt.release(mark);
  return out;
}

/** Rows `ids` of the tied embedding table, gathered to f32 by the backbone. */
function gatherTied(rt: Runtime, net: Transformer, ids: Int32Array, dim: number): number {
  const out = rt.alloc(ids.length * dim * 4);
  const mark = rt.mark();
  const p = rt.alloc(ids.length * 4);
  rt.i32(p, ids.length).set(ids);
  net.embed(out, p, ids.length);
  rt.release(mark);
  return out;
}

/** The backbone's output head restricted to the draft vocabulary, as an f32 linear (4-row packed when it can be). */
function draftHead(rt: Runtime, net: Transformer, ids: Int32Array, file: string): Linear {
  const hp = net.hp, H = hp.hiddenSize, head = net.w.lmHead;
  let w: number;
  // A tied head is the embedding table, gathered through the backbone's own (layout-aware) embedding.
  if (hp.tieWordEmbeddings) w = gatherTied(rt, net, ids, H);
  else if (head.kind === 'dense') w = gatherF32(rt, head.dtype, head.w, Array.from(ids), H);
  else throw new StreamlmError(`MCTP heads draw from the model's output head, which here is ${head.kind}; load the model with dtype auto or f32`, { file, field: 'mctp' });
  if (rt.k.pack_f32r4(w, ids.length, H) === 1) return { kind: 'f32r4', w, bias: 0, N: ids.length, K: H };
  return { kind: 'dense', dtype: 'f32', w, bias: 0, N: ids.length, K: H };
}
