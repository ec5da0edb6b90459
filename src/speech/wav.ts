/**
 * WAV (RIFF) framing of 16-bit mono PCM. A streamed WAV does not know its length when its header
 * goes out, so `wavHeader(rate)` without a count writes the 0xFFFFFFFF "unknown" sizes that
 * players and decoders (ffmpeg, browsers, Python's wave with nframes ignored) accept, as OpenAI's
 * streamed WAV does.
 */

const UNKNOWN = 0xffffffff;

/** The 44-byte header of a PCM16 mono WAV of `samples` samples (unknown if omitted). */
export function wavHeader(sampleRate: number, samples?: number): Uint8Array {
  const data = samples === undefined ? UNKNOWN : samples * 2;
  const b = new Uint8Array(44);
  const v = new DataView(b.buffer);
  const ascii = (at: number, s: string): void => { for (let i = 0; i < s.length; i++) b[at + i] = s.charCodeAt(i); };
  ascii(0, 'RIFF');
  v.setUint32(4, data === UNKNOWN ? UNKNOWN : 36 + data, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  v.setUint32(16, 16, true); // fmt chunk size
  v.setUint16(20, 1, true); // PCM
  v.setUint16(22, 1, true); // mono
  v.setUint32(24, sampleRate, true);
  v.setUint32(28, sampleRate * 2, true); // byte rate
  v.setUint16(32, 2, true); // block align
  v.setUint16(34, 16, true); // bits per sample
  ascii(36, 'data');
  v.setUint32(40, data, true);
  return b;
}

/** Little-endian bytes of PCM16 samples (WAV and OpenAI's `pcm` are little-endian). */
export function pcmBytes(pcm: Int16Array): Uint8Array {
  // Every platform Node and browsers run on is little-endian, so the view is the encoding.
  return new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
}

/** A whole WAV file of the given chunks. */
export function wavFile(sampleRate: number, chunks: readonly Int16Array[]): Uint8Array {
  const n = chunks.reduce((a, c) => a + c.length, 0);
  const out = new Uint8Array(44 + n * 2);
  out.set(wavHeader(sampleRate, n), 0);
  let at = 44;
  for (const c of chunks) { out.set(pcmBytes(c), at); at += c.byteLength; }
  return out;
}
