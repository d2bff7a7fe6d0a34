/**
 * Seeded, bounded fuzzing for the pure parsers: the same seed gives the same inputs on every
 * machine, and every loop stops at a count AND a time budget (the budget is a safety stop, not
 * an assertion: performance is measured by benchmarks, not tests).
 */

/** mulberry32: a small deterministic PRNG; returns floats in [0, 1). */
export function rng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Rand = () => number;

export const pick = <T>(rand: Rand, items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;

export const int = (rand: Rand, max: number): number => Math.floor(rand() * (max + 1));

/** A string of up to `maxLength` pieces drawn from `alphabet`. */
export function randomString(rand: Rand, alphabet: readonly string[], maxLength: number): string {
  let s = '';
  for (let n = int(rand, maxLength); n > 0; n--) s += pick(rand, alphabet);
  return s;
}

/** One to three edits of `text`: insert, delete, replace, or duplicate a slice. */
export function mutate(rand: Rand, text: string, alphabet: readonly string[]): string {
  let s = text;
  for (let edits = 1 + int(rand, 2); edits > 0; edits--) {
    const at = int(rand, s.length);
    const op = int(rand, 3);
    if (op === 0) s = s.slice(0, at) + pick(rand, alphabet) + s.slice(at);
    else if (op === 1) s = s.slice(0, at) + s.slice(at + 1 + int(rand, 3));
    else if (op === 2) s = s.slice(0, at) + pick(rand, alphabet) + s.slice(at + 1);
    else {
      const end = Math.min(s.length, at + 1 + int(rand, 8));
      s = s.slice(0, end) + s.slice(at, end) + s.slice(end);
    }
  }
  return s;
}

/**
 * Run `body` `count` times with a seeded generator, or until `budgetMs` has passed; returns
 * how many iterations ran (for the test to report, not to assert on).
 */
export function fuzz(opts: { seed: number; count: number; budgetMs: number }, body: (rand: Rand, i: number) => void): number {
  const rand = rng(opts.seed);
  const deadline = performance.now() + opts.budgetMs;
  let i = 0;
  for (; i < opts.count; i++) {
    if ((i & 255) === 0 && performance.now() > deadline) break;
    body(rand, i);
  }
  return i;
}
