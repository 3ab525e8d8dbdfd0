/**
 * In which order (PyTorch's `Sampler`): the source indices of batch i of epoch e, a pure function of
 * (seed, epoch, batch), so a resumed run, a worker thread and the main thread all draw the same indices.
 *
 *  - `EpochSampler`: a dataset visited in the order permutation(seed, e) (or stored order), cut into batches of B,
 *    the last one short unless dropped: the plain CIFAR pipeline.
 *  - `MixedSampler`: DM-Improves-AT's `SemiSupervisedSampler` (core/data/semisup.py), for real + generated data.
 *    Indices 0..nReal-1 are real, nReal.. generated. Per batch of B, floor(B·f) generated images drawn uniformly
 *    with replacement and B − floor(B·f) real ones taken in chunks from a fresh permutation (without replacement
 *    within it); a short last chunk is topped up with generated ones; the batch is then shuffled. An epoch is
 *    `numBatches` batches (the reference: ceil(N/B), N the real training set before the validation split); when
 *    the chunks of one permutation run out first, the next permutation starts, as the reference's `while` loop.
 */
import { deriveSeed, permutation, SeededRng } from '../rng.js';

/** Purpose tags so the shuffle, augmentation and extra draws never share a random stream. */
export const TAG_SHUFFLE = 0x5348;
export const TAG_EXTRA = 0x4558;
const TAG_BATCH_SHUFFLE = 0x4253;

export interface BatchSampler {
  readonly numBatches: number;
  /** Source indices of batch `batch` of epoch `epoch`. */
  batch(epoch: number, batch: number): Uint32Array;
  spec(): SamplerSpec;
}

export type SamplerSpec =
  | { kind: 'epoch'; n: number; batchSize: number; shuffle: boolean; dropLast: boolean; seed: number }
  | { kind: 'mixed'; nReal: number; nExtra: number; batchSize: number; fraction: number; numBatches: number; seed: number };

export function openSampler(spec: SamplerSpec): BatchSampler {
  return spec.kind === 'epoch' ? new EpochSampler(spec) : new MixedSampler(spec);
}

/** Batches per epoch of n samples. */
export function numBatches(n: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/** The order in which epoch `epoch` visits a set of n samples: a seeded permutation. */
export function epochOrder(n: number, seed: number, epoch: number): Uint32Array {
  return permutation(n, new SeededRng(deriveSeed(seed, epoch, TAG_SHUFFLE)));
}

/** Keeps the last permutation: consecutive batches of an epoch share it. */
class OrderCache {
  private key = '';
  private order: Uint32Array | undefined;
  get(key: string, make: () => Uint32Array): Uint32Array {
    if (key !== this.key || !this.order) {
      this.order = make();
      this.key = key;
    }
    return this.order;
  }
}

export class EpochSampler implements BatchSampler {
  readonly numBatches: number;
  private readonly cache = new OrderCache();

  constructor(private readonly s: Extract<SamplerSpec, { kind: 'epoch' }>) {
    this.numBatches = numBatches(s.n, s.batchSize, s.dropLast);
  }

  batch(epoch: number, batch: number): Uint32Array {
    const { n, batchSize: B } = this.s;
    const start = batch * B;
    const count = Math.min(B, n - start);
    if (!this.s.shuffle) return Uint32Array.from({ length: count }, (_, k) => start + k);
    return this.cache.get(String(epoch), () => epochOrder(n, this.s.seed, epoch)).slice(start, start + count);
  }

  spec(): SamplerSpec {
    return this.s;
  }
}

export class MixedSampler implements BatchSampler {
  readonly numBatches: number;
  /** Real images per batch: B − floor(B·f). */
  readonly realPerBatch: number;
  /** Batches one permutation of the real set gives. */
  readonly chunksPerPass: number;
  private readonly cache = new OrderCache();

  constructor(private readonly s: Extract<SamplerSpec, { kind: 'mixed' }>) {
    const { batchSize: B, fraction: f, nReal, nExtra } = s;
    if (!(f >= 0 && f < 1)) throw new RangeError(`fraction: expected [0, 1), got ${f}`);
    this.realPerBatch = B - Math.floor(B * f);
    if (this.realPerBatch < 1) throw new RangeError(`fraction ${f} leaves no real image in a batch of ${B}`);
    if (nReal < 1) throw new RangeError('MixedSampler: no real images');
    if (nExtra < 1 && this.realPerBatch < B) throw new RangeError('MixedSampler: no generated images to draw');
    this.chunksPerPass = Math.ceil(nReal / this.realPerBatch);
    this.numBatches = s.numBatches;
  }

  batch(epoch: number, batch: number): Uint32Array {
    const { batchSize: B, nReal, nExtra, seed } = this.s;
    const pass = Math.floor(batch / this.chunksPerPass);
    const chunk = batch % this.chunksPerPass;
    const order = this.cache.get(`${epoch}:${pass}`, () => permutation(nReal, new SeededRng(deriveSeed(seed, epoch, pass, TAG_SHUFFLE))));
    const real = order.subarray(chunk * this.realPerBatch, Math.min(nReal, (chunk + 1) * this.realPerBatch));
    // The reference tops up only when the fraction is positive (`if sup_batch_size < batch_size`): with f = 0 a
    // short last chunk stays short.
    const count = this.realPerBatch < B ? B : real.length;
    const out = new Uint32Array(count);
    out.set(real);
    const draw = new SeededRng(deriveSeed(seed, epoch, batch, TAG_EXTRA));
    for (let k = real.length; k < count; k++) out[k] = nReal + uniformIndex(draw, nExtra);
    const shuffle = permutation(count, new SeededRng(deriveSeed(seed, epoch, batch, TAG_BATCH_SHUFFLE)));
    return Uint32Array.from(shuffle, (p) => out[p]!);
  }

  spec(): SamplerSpec {
    return this.s;
  }
}

/**
 * Uniform integer in [0, n) from 53 random bits: with 50M generated images, 32 bits (`SeededRng.int`) would give
 * some images 1.2% more weight than others.
 */
export function uniformIndex(rng: SeededRng, n: number): number {
  const hi = rng.nextUint32() >>> 5; // 27 bits
  const lo = rng.nextUint32() >>> 6; // 26 bits
  return Math.floor(((hi * 67108864 + lo) / 9007199254740992) * n);
}
