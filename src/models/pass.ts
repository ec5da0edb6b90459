// The state one forward call shares between the prologue, its blocks and the epilogue, and the
// cache's description of where keys and values go (filled by src/cache, read by the blocks).
import type { LinearScratch } from './linear.js';

/**
 * Where the new tokens' keys and values go and which positions everyone sees. Filled by the cache
 * layer; the model never knows which eviction policy produced it.
 */
export interface KVBatch {
  k: readonly number[];           // per layer, (slots, kvDim) f32
  v: readonly number[];
  nSlots: number;                 // physical slots the kernel scans
  slotPos: number;                // i32 (slots): cache position of each slot, EMPTY_POS if empty
  slotGroup: number;              // i32 (slots): rotation group of each slot
  writeSlots: readonly number[];  // physical slot of new token m
  keyPos: readonly number[];      // rotation position of new token m's key (its stream index)
  qPos: readonly number[];        // cache position of new token m (as a query)
  groupOffsets: readonly number[];// query rotation for group g is qPos + groupOffsets[g]
}

/** RoPE tables of one forward: keys (M rows) and queries (G·M rows, group-major), f32 (rows, rotDim/2). */
export interface RopeTables { rotDim: number; cosK: number; sinK: number; cosQ: number; sinQ: number }

/** The state of one forward call that every block reads: the residual stream and what the prologue built. */
export interface Pass {
  M: number;
  kv: KVBatch;
  x: number;              // residual stream (M, H)
  h: number;              // normed input, (M, max(H, qDim))
  y: number;              // a block's projected output (M, H)
  qPos: number;           // i32 (M)
  rope: RopeTables | null;
  lin: LinearScratch;
}
