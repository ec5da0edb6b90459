/**
 * Phrase chunker: turns a token stream into speakable units as early as a synthesizer can say
 * them well. The first unit of a reply is cut at the first clause mark or after a few words, so
 * audio starts within a couple of tokens; after that units are sentences (or clauses of a long
 * sentence), which a synthesizer phrases better than word runs.
 *
 * A '.' ends a sentence only when whitespace follows ("3.14", "e.g." inside a word do not) and
 * the word before it is no abbreviation or initial ("Mr. Smith", "J. R. Tolkien"). Where only
 * the next word can tell ("etc.", "e.g.", an ellipsis), the cut waits for it: a lowercase
 * letter or a digit continues the sentence. Closing quotes and brackets stay with their sentence.
 */

/** One speakable unit: its text and its span [start, end) in the whole text pushed so far. */
export interface Phrase {
  text: string;
  start: number;
  end: number;
}

export interface ChunkerOptions {
  /** Words after which the first phrase is cut when no punctuation came yet (default 4). */
  firstWords?: number;
  /**
   * Words after which the second phrase is cut (at a clause mark or a space) instead of waiting for
   * its sentence to end (default: no such cut). A short first phrase plays for well under a second;
   * this lets the second be ready before it ends, where a whole sentence may not be.
   */
  secondWords?: number;
  /**
   * From the third phrase on, a phrase is cut at a space once it has this many times the words of
   * all phrases before it (default: no such cut). A phrase is synthesized only when its text is
   * complete, so its text must be generated while the audio already cut plays: capping its length
   * by that audio keeps a slow generator (a loaded machine) from running the audio dry, and the cap
   * grows away within a few phrases.
   */
  growth?: number;
  /** A sentence longer than this (chars) is cut at its next clause mark (default 80). */
  clauseAfter?: number;
  /** A phrase is cut at a space once longer than this (chars), whatever it holds (default 240). */
  maxChars?: number;
}

const TERMINATORS = '.!?…';
const CLAUSE_MARKS = ',;:';
const DASHES = '—–';
const CLOSERS = '"\'”’»)]}';
/** Abbreviations that a name or a number follows: never the end of a sentence. */
const TITLES = new Set(['mr', 'mrs', 'ms', 'dr', 'prof', 'st', 'sr', 'jr', 'mt', 'no', 'vs', 'fig', 'vol', 'ch', 'gen', 'col', 'capt', 'lt', 'sgt', 'rev', 'hon', 'messrs', 'mme', 'mlle']);
/** Abbreviations that may end a sentence: the next word decides. */
const MAYBE_END = new Set(['etc', 'e.g', 'i.e', 'cf', 'al', 'approx', 'inc', 'ltd', 'co', 'corp', 'a.m', 'p.m', 'u.s', 'u.k']);

const isSpace = (c: string): boolean => c === ' ' || c === '\n' || c === '\t' || c === '\r' || c === '\u00a0';

/** The word that ends just before index `i` (letters and inner dots), lowercased. */
function wordBefore(s: string, i: number): string {
  let j = i;
  while (j > 0 && !isSpace(s[j - 1]) && !CLOSERS.includes(s[j - 1]) && s[j - 1] !== '(' && s[j - 1] !== '"' && s[j - 1] !== '“') j--;
  return s.slice(j, i).toLowerCase();
}

/** Does the text after a sentence-looking mark continue the same sentence? */
function continues(c: string): boolean { return /[\p{Ll}\p{N},;:]/u.test(c); }

export class PhraseChunker {
  private pending = '';
  /** Offset of `pending` in the whole text. */
  private base = 0;
  private emitted = 0;
  /** Words in the phrases emitted so far. */
  private wordsOut = 0;
  private readonly growth: number;
  private readonly firstWords: number;
  private readonly secondWords: number;
  private readonly clauseAfter: number;
  private readonly maxChars: number;

  constructor(opts: ChunkerOptions = {}) {
    this.firstWords = opts.firstWords ?? 4;
    this.secondWords = opts.secondWords ?? Infinity;
    this.growth = opts.growth ?? Infinity;
    this.clauseAfter = opts.clauseAfter ?? 80;
    this.maxChars = opts.maxChars ?? 240;
  }

  /** Adds text (any split: tokens, characters, whole paragraphs) and returns the phrases it completes. */
  push(text: string): Phrase[] {
    this.pending += text;
    return this.drain(false);
  }

  /** Ends the stream: returns whatever is left as phrases. */
  flush(): Phrase[] {
    return this.drain(true);
  }

  private drain(final: boolean): Phrase[] {
    const out: Phrase[] = [];
    for (;;) {
      const cut = this.findCut(final);
      if (cut <= 0) break;
      const raw = this.pending.slice(0, cut);
      const lead = raw.length - raw.trimStart().length;
      const text = raw.trim();
      if (text.length > 0 && /[\p{L}\p{N}]/u.test(text)) {
        out.push({ text, start: this.base + lead, end: this.base + lead + text.length });
        this.emitted++;
        this.wordsOut += text.split(/\s+/).length;
      }
      this.pending = this.pending.slice(cut);
      this.base += cut;
    }
    return out;
  }

  /** The end (exclusive) of the next phrase in `pending`, or -1 while it cannot be told yet. */
  private findCut(final: boolean): number {
    const s = this.pending;
    const first = this.emitted === 0 || (this.emitted === 1 && this.secondWords < Infinity);
    const wordCut = this.emitted === 0 ? this.firstWords : this.emitted === 1 ? this.secondWords : Math.ceil(this.growth * this.wordsOut);
    let words = 0;
    let inWord = false;
    for (let i = 0; i < s.length; i++) {
      const c = s[i];
      if (isSpace(c)) {
        if (inWord) words++;
        inWord = false;
        if (c === '\n' && s.slice(0, i).trim().length > 0) return i + 1;
        if (words > 0 && (words >= wordCut || i >= this.maxChars)) return i + 1;
        continue;
      }
      inWord = true;
      if (TERMINATORS.includes(c)) {
        let j = i + 1;
        while (j < s.length && TERMINATORS.includes(s[j])) j++;
        const dots = j - i;
        while (j < s.length && CLOSERS.includes(s[j])) j++;
        if (j === s.length) return final ? j : -1;
        if (!isSpace(s[j])) { i = j - 1; continue; }
        if (c === '.' || c === '…') {
          const w = wordBefore(s, i);
          const initial = /^\p{Lu}$/u.test(s.slice(i - 1, i)) && w.length === 1;
          if (dots === 1 && c === '.' && (TITLES.has(w) || initial)) { i = j - 1; continue; }
          if (c === '…' || dots > 1 || MAYBE_END.has(w)) {
            let k = j;
            while (k < s.length && isSpace(s[k])) k++;
            if (k === s.length) return final ? s.length : -1;
            if (continues(s[k])) { i = j - 1; continue; }
          }
        }
        return j;
      }
      const clause = first || i >= this.clauseAfter;
      if (clause && DASHES.includes(c) && i > 0) return i + 1;
      if (clause && CLAUSE_MARKS.includes(c)) {
        let j = i + 1;
        while (j < s.length && CLOSERS.includes(s[j])) j++;
        if (j === s.length) { if (final) return j; break; }
        if (isSpace(s[j])) return j;
      }
    }
    return final && s.length > 0 ? s.length : -1;
  }
}

/** Splits a whole text into phrases at once (for /v1/audio/speech, where all the input is known). */
export function splitPhrases(text: string, opts?: ChunkerOptions): Phrase[] {
  const c = new PhraseChunker(opts);
  return [...c.push(text), ...c.flush()];
}

/**
 * How a spoken chat reply is cut into phrases. Two words are enough to start speaking: the first
 * audio then follows the first token by a couple of tokens. The second phrase (at most 8 words) is
 * ready before those two words have played. Each later phrase is a sentence, but at most 1.5 times
 * the words cut before it: its text is generated while that audio plays, so even a generator only
 * twice as fast as speech (a loaded machine) finishes it in time; within a few phrases the cap
 * exceeds any sentence.
 */
export const CHAT_CHUNKER: ChunkerOptions = { firstWords: 2, secondWords: 8, growth: 1.5 };
