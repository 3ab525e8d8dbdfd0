/**
 * In-memory batching in the main thread, synchronously: evaluation, tests and benchmarks. The same three pieces
 * as the training loader (loader.ts): a MemorySource, a sampler, an augmentation; each batch becomes exactly one
 * x tensor and one y tensor.
 *
 * Randomness is a pure function of seeds (see ARCHITECTURE.md): the visiting order of epoch e comes from
 * (seed, e), and the augmentation and extra-data draws of batch i of epoch e from (seed, e, i). A run resumed at
 * `startBatch` therefore sees exactly the batches the interrupted run would have seen.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { augmentationFor, type Augmentation } from './augmentation.js';
import { makeBatch } from './pipeline.js';
import { EpochSampler, MixedSampler, numBatches, type BatchSampler } from './sampler.js';
import { ConcatSource, MemorySource, type ImageSource } from './source.js';
import type { Batch, BatchOptions, ImageSet } from './types.js';

export { augmentationName, copyScaled, CROP_PADDING, cropFlip } from './augmentation.js';
export { epochOrder, numBatches } from './sampler.js';

function validate(set: ImageSet, opts: BatchOptions): void {
  const { batchSize } = opts;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new InputError(`batchSize: expected a positive integer, got ${batchSize}`);
  for (const [k, v] of [
    ['seed', opts.seed],
    ['epoch', opts.epoch],
    ['startBatch', opts.startBatch],
  ] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new InputError(`${k}: expected a non-negative integer, got ${v}`);
  }
  if (set.n < 1) throw new InputError(`${set.name}: cannot make batches of an empty set`);
  const extra = opts.extra;
  if (extra) {
    const { set: e, ratio } = extra;
    if (!(ratio >= 0 && ratio < 1)) throw new InputError(`extra.ratio: expected a number in [0, 1), got ${ratio}`);
    if (e.n < 1) throw new InputError(`${e.name}: the extra data set is empty`);
  }
}

/** Source and sampler of `batches` (and of the trainer for in-memory data). */
export function batchPlan(set: ImageSet, opts: BatchOptions): { source: ImageSource; sampler: BatchSampler } {
  validate(set, opts);
  const seed = opts.seed ?? 0;
  const real = new MemorySource(set);
  if (!opts.extra) {
    return {
      source: real,
      sampler: new EpochSampler({ kind: 'epoch', n: set.n, batchSize: opts.batchSize, shuffle: opts.shuffle, dropLast: opts.dropLast ?? false, seed }),
    };
  }
  const source = new ConcatSource([real, new MemorySource(opts.extra.set)]);
  const sampler = new MixedSampler({
    kind: 'mixed',
    nReal: set.n,
    nExtra: opts.extra.set.n,
    batchSize: opts.batchSize,
    fraction: opts.extra.ratio,
    numBatches: numBatches(set.n, opts.batchSize, opts.dropLast ?? false),
    seed,
  });
  return { source, sampler };
}

/**
 * The batches of one epoch, lazily: each `next()` builds one batch, so breaking out of the loop leaks nothing.
 * The caller disposes each batch's `x` and `y`.
 */
export function batches(set: ImageSet, opts: BatchOptions): Generator<Batch, void, undefined> {
  const plan = batchPlan(set, opts);
  // Built here, not in the generator, so a wrong policy is refused when batches() is called.
  const augmentation = augmentationFor(opts.pair === undefined ? { augment: opts.augment } : { augment: opts.augment, pair: opts.pair }, plan.source);
  return generate(plan.source, plan.sampler, augmentation, opts);
}

function* generate(source: ImageSource, sampler: BatchSampler, augmentation: Augmentation, opts: BatchOptions): Generator<Batch, void, undefined> {
  const seed = opts.seed ?? 0;
  const epoch = opts.epoch ?? 0;
  for (let i = opts.startBatch ?? 0; i < sampler.numBatches; i++) {
    const b = makeBatch(source, sampler, augmentation, seed, epoch, i);
    yield {
      x: tf.tensor4d(b.x, [b.rows, source.height, source.width, source.channels], 'float32'),
      y: tf.tensor1d(b.y, 'int32'),
      index: i,
      globalSize: b.globalRows,
    };
  }
}
