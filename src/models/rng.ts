import { boxMuller, deriveSeed, SeededRng } from '../rng.js';

/**
 * Seeded random numbers for weight initialisation. tfjs initialisers either ignore their `seed` or reuse it
 * per layer (so two layers of the same shape get the same values), so every initial weight of the zoo is drawn
 * here and written into the model afterwards: the same seed then gives bit-identical weights on every backend.
 */

/** A uniform [0, 1) source for one weight's initial values. */
export function uniformSource(seed: number): () => number {
  const rng = new SeededRng(seed);
  return () => rng.next();
}

/**
 * A 32-bit seed for one weight, from the model seed and the weight's name. Keying by name (not by position)
 * keeps a weight's initial values unchanged when unrelated layers are added or reordered.
 */
export function weightSeed(seed: number, name: string): number {
  // FNV-1a over the name, then folded with the seed by the project's seed mixer.
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return deriveSeed(seed, h >>> 0);
}

/** n samples of N(0, std²) by Box-Muller (both outputs of each pair are used). */
export function normalArray(n: number, std: number, random: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const [a, b] = boxMuller(random(), random(), std);
    out[i] = a;
    if (i + 1 < n) out[i + 1] = b;
  }
  return out;
}

/** n samples of U(-bound, bound). */
export function uniformArray(n: number, bound: number, random: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * random() - 1) * bound;
  return out;
}
