/** Subsets of an ImageSet: evaluation prefixes, small training subsets, validation splits. */
import { InputError } from '../errors.js';
import { deriveSeed, permutation, SeededRng } from '../rng.js';
import type { ImageSet } from './types.js';

const TAG_VALIDATION = 0x5641;

/** A new set holding the samples at `indices`, in that order (images copied). */
export function subset(set: ImageSet, indices: ArrayLike<number>, name = set.name): ImageSet {
  const size = set.height * set.width * set.channels;
  const n = indices.length;
  const images = new Uint8Array(n * size);
  const labels = new Uint8Array(n);
  const coarse = set.coarseLabels ? new Uint8Array(n) : undefined;
  for (let k = 0; k < n; k++) {
    const j = indices[k]!;
    if (!Number.isInteger(j) || j < 0 || j >= set.n) throw new RangeError(`subset: index ${j} outside 0..${set.n - 1}`);
    images.set(set.images.subarray(j * size, (j + 1) * size), k * size);
    labels[k] = set.labels[j]!;
    if (coarse) coarse[k] = set.coarseLabels![j]!;
  }
  return { ...set, name, images, labels, ...(coarse ? { coarseLabels: coarse } : {}), n };
}

function checkImageCount(set: ImageSet, n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0 || n > set.n) {
    throw new InputError(`${what}: expected an integer in 0..${set.n} (${set.name} has ${set.n} images), got ${n}`);
  }
}

/**
 * The first n images (RobustBench convention: evaluations on "n examples" use the first n test images).
 * Shares memory with `set` (a view, no copy).
 */
export function firstN(set: ImageSet, n: number): ImageSet {
  checkImageCount(set, n, 'firstN');
  const size = set.height * set.width * set.channels;
  return {
    ...set,
    images: set.images.subarray(0, n * size),
    labels: set.labels.subarray(0, n),
    ...(set.coarseLabels ? { coarseLabels: set.coarseLabels.subarray(0, n) } : {}),
    n,
  };
}

/**
 * A class-balanced training subset of n images for short runs: the first ⌈n/C⌉ or ⌊n/C⌋ images of each class in
 * stored order (lower class ids get the remainder), topped up in stored order if a class runs short.
 * The result keeps stored order. Deterministic, no seed needed.
 */
export function trainSubset(set: ImageSet, n: number): ImageSet {
  checkImageCount(set, n, 'trainSubset');
  const C = set.numClasses;
  const quota = Array.from({ length: C }, (_, c) => Math.floor(n / C) + (c < n % C ? 1 : 0));
  const taken = new Uint8Array(set.n);
  let count = 0;
  for (let j = 0; j < set.n && count < n; j++) {
    const c = set.labels[j]!;
    if (quota[c]! > 0) {
      quota[c]!--;
      taken[j] = 1;
      count++;
    }
  }
  for (let j = 0; j < set.n && count < n; j++) {
    if (!taken[j]) {
      taken[j] = 1;
      count++;
    }
  }
  const idx: number[] = [];
  for (let j = 0; j < set.n; j++) if (taken[j]) idx.push(j);
  return subset(set, idx, `${set.name}[${n}]`);
}

/**
 * Splits `train` into disjoint training and validation sets: nVal images chosen by a seeded permutation. Both
 * parts keep stored order. The same (train, nVal, seed) always gives the same split.
 */
export function splitValidation(train: ImageSet, nVal: number, seed: number): { train: ImageSet; val: ImageSet } {
  checkImageCount(train, nVal, 'splitValidation nVal');
  if (!Number.isSafeInteger(seed)) throw new InputError(`splitValidation seed: expected an integer, got ${seed}`);
  const perm = permutation(train.n, new SeededRng(deriveSeed(seed, TAG_VALIDATION)));
  const isVal = new Uint8Array(train.n);
  for (let k = 0; k < nVal; k++) isVal[perm[k]!] = 1;
  const valIdx: number[] = [];
  const trainIdx: number[] = [];
  for (let j = 0; j < train.n; j++) (isVal[j] ? valIdx : trainIdx).push(j);
  return { train: subset(train, trainIdx, `${train.name}-minus-val`), val: subset(train, valIdx, `${train.name}-val`) };
}

/**
 * Splits off the first nVal training images as the validation set (DM-Improves-AT: `data[1024:]` trains,
 * `Subset(train, arange(0, 1024))` validates). Both parts keep stored order.
 */
export function splitValidationFirst(train: ImageSet, nVal: number): { train: ImageSet; val: ImageSet } {
  checkImageCount(train, nVal, 'splitValidationFirst nVal');
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);
  return { train: subset(train, range(nVal, train.n), `${train.name}-minus-val`), val: subset(train, range(0, nVal), `${train.name}-val`) };
}
