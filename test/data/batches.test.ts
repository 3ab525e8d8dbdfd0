import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { noLeak } from '../helpers.js';
import { batches, cropFlip, epochOrder, numBatches } from '../../src/data/batches.js';
import { MixedSampler } from '../../src/data/sampler.js';
import { InputError } from '../../src/errors.js';
import type { BatchOptions, ImageSet } from '../../src/data/types.js';
import { indexedSet } from './fixtures.js';

const SIZE = 32 * 32 * 3;

interface Pulled {
  index: number;
  x: Float32Array;
  y: Int32Array;
  shape: number[];
}

/** Materialises every batch of an epoch as plain arrays, disposing the tensors. */
function pull(set: ImageSet, opts: BatchOptions): Pulled[] {
  const out: Pulled[] = [];
  for (const b of batches(set, opts)) {
    assert.equal(b.x.dtype, 'float32');
    assert.equal(b.y.dtype, 'int32');
    out.push({ index: b.index, x: b.x.dataSync() as Float32Array, y: b.y.dataSync() as Int32Array, shape: b.x.shape });
    tf.dispose([b.x, b.y]);
  }
  return out;
}

/** Index of the source image of a non-augmented batch sample (encoded in its first two bytes). */
function decodeIndex(x: Float32Array, k: number): number {
  return Math.round(x[k * SIZE]! * 255) + 256 * Math.round(x[k * SIZE + 1]! * 255);
}

/**
 * Independent formulation of the augmentation: build the 40×40 zero-padded image explicitly, cut the 32×32 window
 * at (dy, dx), then mirror it.
 */
function referenceCropFlip(src: Uint8Array, off: number, dy: number, dx: number, flip: boolean): Float32Array {
  const P = 40;
  const padded = new Uint8Array(P * P * 3);
  for (let y = 0; y < 32; y++)
    for (let x = 0; x < 32; x++) for (let c = 0; c < 3; c++) padded[((y + 4) * P + x + 4) * 3 + c] = src[off + (y * 32 + x) * 3 + c]!;
  const crop = new Float32Array(SIZE);
  for (let y = 0; y < 32; y++)
    for (let x = 0; x < 32; x++) for (let c = 0; c < 3; c++) crop[(y * 32 + x) * 3 + c] = padded[((y + dy) * P + x + dx) * 3 + c]! / 255;
  if (!flip) return crop;
  const out = new Float32Array(SIZE);
  for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) for (let c = 0; c < 3; c++) out[(y * 32 + x) * 3 + c] = crop[(y * 32 + 31 - x) * 3 + c]!;
  return out;
}

function sameArray(a: ArrayLike<number>, b: ArrayLike<number>, from = 0, len = a.length): boolean {
  for (let i = 0; i < len; i++) if (Math.fround(a[from + i]!) !== Math.fround(b[i]!)) return false;
  return true;
}

describe('cropFlip', () => {
  // 4×4 single-channel image with values 1..16, padding 1: offsets 0..2, hand-computed expectations.
  const src = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
  const shape = { height: 4, width: 4, channels: 1 };
  const run = (dy: number, dx: number, flip: boolean) => {
    const dst = new Float32Array(16).fill(-1);
    cropFlip(src, 0, dst, 0, shape, dy, dx, flip, 1);
    return Array.from(dst, (v) => Math.round(v * 255));
  };

  it('centre offset without flip is the identity', () => {
    assert.deepEqual(run(1, 1, false), Array.from(src));
  });

  it('shifts in zero padding (hand-computed)', () => {
    // out[y][x] = padded[y][x + 2] = src[y - 1][x + 1]
    assert.deepEqual(run(0, 2, false), [0, 0, 0, 0, 2, 3, 4, 0, 6, 7, 8, 0, 10, 11, 12, 0]);
  });

  it('flips after cropping (hand-computed)', () => {
    // out[y][x] = padded[y + 2][(3 - x) + 0] = src[y + 1][2 - x]
    assert.deepEqual(run(2, 0, true), [7, 6, 5, 0, 11, 10, 9, 0, 15, 14, 13, 0, 0, 0, 0, 0]);
  });

  it('scales to [0, 1] exactly as v / 255', () => {
    const s = new Uint8Array([0, 1, 128, 255]);
    const dst = new Float32Array(4);
    cropFlip(s, 0, dst, 0, { height: 1, width: 4, channels: 1 }, 0, 0, false, 0);
    assert.deepEqual(Array.from(dst), [0, Math.fround(1 / 255), Math.fround(128 / 255), 1]);
  });
});

describe('batches', () => {
  it('numBatches counts a last partial batch unless dropLast', () => {
    assert.equal(numBatches(10, 4), 3);
    assert.equal(numBatches(10, 4, true), 2);
    assert.equal(numBatches(8, 4, false), 2);
    assert.equal(numBatches(3, 4, true), 0);
  });

  it('without shuffle or augmentation returns the stored images scaled to [0, 1]', async () => {
    const set = indexedSet(10);
    const got = await noLeak(() => pull(set, { batchSize: 4, shuffle: false, augment: false }));
    assert.deepEqual(
      got.map((b) => b.shape),
      [
        [4, 32, 32, 3],
        [4, 32, 32, 3],
        [2, 32, 32, 3],
      ],
    );
    assert.deepEqual(
      got.map((b) => b.index),
      [0, 1, 2],
    );
    for (let i = 0; i < 10; i++) {
      const b = got[Math.floor(i / 4)]!;
      const k = i % 4;
      assert.equal(b.y[k], set.labels[i]);
      for (let q = 0; q < SIZE; q++) assert.equal(b.x[k * SIZE + q], Math.fround(set.images[i * SIZE + q]! / 255));
    }
    assert.equal((await noLeak(() => pull(set, { batchSize: 4, shuffle: false, augment: false, dropLast: true }))).length, 2);
  });

  it('shuffle visits a permutation, fixed by (seed, epoch) and different across epochs', async () => {
    const n = 300;
    const set = indexedSet(n);
    const orderOf = (seed: number, epoch: number) =>
      pull(set, { batchSize: 64, shuffle: true, augment: false, seed, epoch }).flatMap((b) =>
        Array.from({ length: b.y.length }, (_, k) => decodeIndex(b.x, k)),
      );
    await noLeak(() => {
      const o = orderOf(5, 0);
      assert.equal(o.length, n);
      assert.deepEqual(
        [...o].sort((a, b) => a - b),
        Array.from({ length: n }, (_, i) => i),
        'a permutation',
      );
      assert.deepEqual(o, Array.from(epochOrder(n, 5, 0)));
      assert.deepEqual(orderOf(5, 0), o, 'reproducible');
      assert.notDeepEqual(orderOf(5, 1), o, 'epoch changes the order');
      assert.notDeepEqual(orderOf(6, 0), o, 'seed changes the order');
      const fixed = o.filter((v, i) => v === i).length;
      assert.ok(fixed < 10, `shuffled order keeps ${fixed} of ${n} in place`);
    });
  });

  it('augmentation keeps shapes and range, matches a crop/flip of each source image, and follows the seed', async () => {
    const n = 64;
    const set = indexedSet(n);
    await noLeak(() => {
      const opts = { batchSize: 32, shuffle: true, augment: true, seed: 11, epoch: 3 };
      const a = pull(set, opts);
      const order = epochOrder(n, 11, 3);
      const seen = new Set<string>();
      for (const b of a) {
        assert.deepEqual(b.shape, [32, 32, 32, 3]);
        assert.ok(
          b.x.every((v) => v >= 0 && v <= 1),
          'values in [0, 1]',
        );
        for (let k = 0; k < 32; k++) {
          const j = order[b.index * 32 + k]!;
          assert.equal(b.y[k], set.labels[j]);
          let match: string | undefined;
          for (let dy = 0; dy <= 8 && !match; dy++)
            for (let dx = 0; dx <= 8 && !match; dx++)
              for (const flip of [false, true]) {
                if (sameArray(b.x, referenceCropFlip(set.images, j * SIZE, dy, dx, flip), k * SIZE, SIZE)) {
                  match = `${dy},${dx},${flip}`;
                  break;
                }
              }
          assert.ok(match, `sample ${k} of batch ${b.index} is not a 4-pixel crop/flip of image ${j}`);
          seen.add(match);
        }
      }
      assert.ok(seen.size > 20, `only ${seen.size} distinct crops/flips in 64 samples`);
      assert.ok([...seen].some((s) => s.endsWith('true')) && [...seen].some((s) => s.endsWith('false')), 'both flips occur');

      const again = pull(set, opts);
      assert.ok(
        a.every((b, i) => sameArray(b.x, again[i]!.x)),
        'same seed, same augmentation',
      );
      const other = pull(set, { ...opts, seed: 12 });
      assert.ok(!sameArray(a[0]!.x, other[0]!.x), 'different seed, different batch');
      const nextEpoch = pull(set, { ...opts, epoch: 4 });
      assert.ok(!sameArray(a[0]!.x, nextEpoch[0]!.x), 'different epoch, different batch');
    });
  });

  it('resuming at startBatch yields exactly the remaining batches', async () => {
    const set = indexedSet(100);
    const extra = { set: indexedSet(40, 10, 'extra'), ratio: 0.25 };
    await noLeak(() => {
      for (const base of [
        { batchSize: 16, shuffle: true, augment: true, seed: 3, epoch: 2 },
        { batchSize: 16, shuffle: true, augment: true, seed: 3, epoch: 2, extra },
      ] satisfies BatchOptions[]) {
        const full = pull(set, base);
        const resumed = pull(set, { ...base, startBatch: 4 });
        assert.equal(resumed.length, full.length - 4);
        resumed.forEach((b, i) => {
          const f = full[i + 4]!;
          assert.equal(b.index, f.index);
          assert.deepEqual(Array.from(b.y), Array.from(f.y));
          assert.ok(sameArray(b.x, f.x), `batch ${b.index} differs after resume`);
        });
      }
    });
  });

  it('extra data: the reference sampler, floor(ratio · batchSize) extra samples per batch, epochs keep the original length', async () => {
    const n = 200;
    const set = indexedSet(n); // labels i mod 10, indices < 200
    const extraSet = indexedSet(500, 10, 'generated');
    // Byte 2 of each image marks where it came from.
    for (let i = 0; i < extraSet.n; i++) extraSet.images[i * SIZE + 2] = 255;
    for (let i = 0; i < set.n; i++) set.images[i * SIZE + 2] = 0;
    await noLeak(() => {
      const got = pull(set, { batchSize: 20, shuffle: true, augment: false, seed: 9, epoch: 0, extra: { set: extraSet, ratio: 0.33 } });
      assert.equal(got.length, numBatches(n, 20));
      const sampler = new MixedSampler({ kind: 'mixed', nReal: n, nExtra: 500, batchSize: 20, fraction: 0.33, numBatches: 10, seed: 9 });
      const extras = new Set<number>();
      for (const b of got) {
        assert.equal(b.y.length, 20);
        const originals: number[] = [];
        for (let k = 0; k < 20; k++) {
          const idx = decodeIndex(b.x, k);
          if (Math.round(b.x[k * SIZE + 2]! * 255) === 255) {
            extras.add(idx);
            assert.equal(b.y[k], extraSet.labels[idx]);
            assert.equal(sampler.batch(0, b.index)[k], n + idx, "in the sampler's order");
          } else {
            originals.push(idx);
            assert.equal(b.y[k], set.labels[idx]);
            assert.equal(sampler.batch(0, b.index)[k], idx, "in the sampler's order");
          }
        }
        assert.equal(originals.length, 14, `batch ${b.index} has ${originals.length} originals, expected 20 - floor(0.33 · 20) = 14`);
      }
      assert.ok(extras.size > 40, `extra draws cover only ${extras.size} images`);
    });
  });

  it('stopping early leaks nothing: batches are built one at a time', async () => {
    const set = indexedSet(40);
    await noLeak(() => {
      for (const b of batches(set, { batchSize: 8, shuffle: true, augment: true, seed: 1 })) {
        tf.dispose([b.x, b.y]);
        if (b.index === 1) break;
      }
    });
  });

  it('rejects bad options with InputError', () => {
    const set = indexedSet(4);
    assert.throws(() => batches(set, { batchSize: 0, shuffle: false, augment: false }), InputError);
    assert.throws(() => batches(set, { batchSize: 2, shuffle: false, augment: false, extra: { set, ratio: 1 } }), /extra\.ratio/);
    assert.throws(() => batches(set, { batchSize: 2, shuffle: false, augment: false, startBatch: -1 }), /startBatch/);
  });
});
