import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { firstN, splitValidation, splitValidationFirst, subset, trainSubset } from '../../src/data/subsets.js';
import { InputError } from '../../src/errors.js';
import { indexedSet } from './fixtures.js';

const SIZE = 32 * 32 * 3;
/** Source index of each image of a set built from indexedSet (first two bytes). */
const indicesOf = (s: { n: number; images: Uint8Array }) => Array.from({ length: s.n }, (_, k) => s.images[k * SIZE]! + 256 * s.images[k * SIZE + 1]!);

describe('subsets', () => {
  it('firstN is the prefix (RobustBench convention) and checks n', () => {
    const set = indexedSet(50);
    const f = firstN(set, 12);
    assert.equal(f.n, 12);
    assert.deepEqual(
      indicesOf(f),
      Array.from({ length: 12 }, (_, i) => i),
    );
    assert.deepEqual(Array.from(f.labels), Array.from(set.labels.subarray(0, 12)));
    assert.equal(f.images.length, 12 * SIZE);
    assert.throws(
      () => firstN(set, 51),
      (e: Error) => e instanceof InputError && /firstN: expected an integer in 0\.\.50/.test(e.message),
    );
  });

  it('subset copies the chosen images and labels in the given order', () => {
    const set = indexedSet(20);
    const s = subset(set, [7, 3, 19]);
    assert.deepEqual(indicesOf(s), [7, 3, 19]);
    assert.deepEqual(Array.from(s.labels), [7, 3, 9]);
    for (let q = 0; q < SIZE; q++) assert.equal(s.images[2 * SIZE + q], set.images[19 * SIZE + q]);
    s.images[0] = 99;
    assert.notEqual(set.images[7 * SIZE], 99, 'a copy, not a view');
  });

  it('trainSubset is class-balanced and keeps stored order', () => {
    const set = indexedSet(200, 10);
    // skew the first 100 labels towards class 0 so a plain prefix would be unbalanced
    for (let i = 0; i < 100; i++) set.labels[i] = i % 2 === 0 ? 0 : set.labels[i]!;
    const s = trainSubset(set, 35);
    assert.equal(s.n, 35);
    const counts = new Array<number>(10).fill(0);
    for (const l of s.labels) counts[l]!++;
    assert.deepEqual(counts, [4, 4, 4, 4, 4, 3, 3, 3, 3, 3]);
    const idx = indicesOf(s);
    assert.deepEqual(
      idx,
      [...idx].sort((a, b) => a - b),
    );
  });

  it('splitValidation gives disjoint, complete, deterministic splits that depend on the seed', () => {
    const set = indexedSet(100);
    const a = splitValidation(set, 20, 1);
    assert.equal(a.val.n, 20);
    assert.equal(a.train.n, 80);
    const v = indicesOf(a.val);
    const t = indicesOf(a.train);
    assert.equal(new Set([...v, ...t]).size, 100, 'disjoint and covering');
    for (const [k, j] of t.entries()) assert.equal(a.train.labels[k], set.labels[j]);
    assert.deepEqual(indicesOf(splitValidation(set, 20, 1).val), v, 'deterministic');
    assert.notDeepEqual(indicesOf(splitValidation(set, 20, 2).val), v, 'seed matters');
    assert.ok(
      v.some((j) => j >= 20),
      'not simply the prefix',
    );
    assert.throws(() => splitValidation(set, 101, 1), InputError);
  });
});

describe('splitValidationFirst', () => {
  it('holds out the first nVal images (DM-Improves-AT: data[1024:] trains, the first 1024 validate)', () => {
    const set = indexedSet(30);
    const { train, val } = splitValidationFirst(set, 8);
    const idx = (s: typeof set) => Array.from({ length: s.n }, (_, i) => s.images[i * 3072]! + 256 * s.images[i * 3072 + 1]!);
    assert.deepEqual(idx(val), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.deepEqual(
      idx(train),
      Array.from({ length: 22 }, (_, i) => i + 8),
    );
    assert.deepEqual(Array.from(train.labels), Array.from(set.labels.subarray(8)));
    assert.throws(() => splitValidationFirst(set, 31), InputError);
  });
});
