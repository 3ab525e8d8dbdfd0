/**
 * The project's one seeded random-number source, in plain JS so results are identical on every backend.
 * Every random choice (shuffle order, crop offsets, flips, synthetic images, initial weights, attack starts,
 * Square's squares) comes from a generator seeded by `deriveSeed(seed, ...coordinates)`, so e.g. a batch is a
 * pure function of (seed, epoch, batch index) and a resumed run sees exactly what it would have seen.
 */

/** murmur3's 32-bit finaliser: a cheap bijection that spreads every input bit over the output. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Hashes a sequence of integers (e.g. seed, epoch, batch index, a purpose tag) into one 32-bit seed.
 * Order matters: deriveSeed(1, 2) differs from deriveSeed(2, 1). Integers beyond 32 bits keep their high bits.
 */
export function deriveSeed(...parts: number[]): number {
  let h = 0x2545f491;
  for (const p of parts) {
    if (!Number.isSafeInteger(p)) throw new RangeError(`deriveSeed: expected safe integers, got ${p}`);
    const lo = p >>> 0;
    const hi = Math.floor(p / 4294967296) >>> 0;
    h = fmix32((h + lo + 0x9e3779b9) >>> 0);
    h = fmix32((h ^ hi) + 0x7f4a7c15);
  }
  return h;
}

/** mulberry32: 32 bits of state, fast, good enough for shuffles and augmentation (not for cryptography). */
export class SeededRng {
  private s: number;

  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  /** The whole generator state; `SeededRng.fromState(rng.state())` continues the same sequence. */
  state(): number {
    return this.s;
  }

  static fromState(state: number): SeededRng {
    return new SeededRng(state);
  }

  nextUint32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n); the bias of the float method is below 2^-32 · n, irrelevant here. */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** −1 or +1 with equal probability. */
  sign(): number {
    return this.next() < 0.5 ? -1 : 1;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Standard normal (one value per call: the pair's second value is dropped for simplicity). */
  normal(): number {
    return boxMuller(this.next(), this.next())[0];
  }
}

/**
 * The one normal sampler: two independent N(0, std²) values from two uniforms u, v in [0, 1) (Box-Muller).
 * 1 − u lies in (0, 1], so the logarithm is finite.
 */
export function boxMuller(u: number, v: number, std = 1): [number, number] {
  const r = Math.sqrt(-2 * Math.log(1 - u)) * std;
  const theta = 2 * Math.PI * v;
  return [r * Math.cos(theta), r * Math.sin(theta)];
}

/** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
export function permutation(n: number, rng: SeededRng): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}
