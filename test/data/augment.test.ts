/**
 * The augmentation policies: determinism, what each policy adds on top of crop-flip (checked against independent
 * formulations), the reference samplers' geometry (Cutout's clipped square, IDBH's CropShift, RandomErasing's box)
 * and their use through batches().
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { noLeak } from '../helpers.js';
import { AUGMENTATIONS, AUTOAUGMENT_CIFAR10, Augmenter, augmentBatch, cropShift, erasingBox, ILDOONET_OPS, ildoonetValue } from '../../src/data/augment.js';
import { cutout } from '../../src/data/augment-ops.js';
import { batches, cropFlip } from '../../src/data/batches.js';
import { SeededRng } from '../../src/rng.js';
import { indexedSet } from './fixtures.js';

const SHAPE = { height: 32, width: 32, channels: 3 };
const SIZE = 32 * 32 * 3;

/** A textured image with no zero bytes (so a zeroed square is visible), different for each k. */
function image(k: number): Uint8Array {
  const a = new Uint8Array(SIZE);
  for (let i = 0; i < SIZE; i++) a[i] = 1 + ((i * 7 + k * 31 + ((i * i) >> 5)) % 254);
  return a;
}

function augmented(policy: (typeof AUGMENTATIONS)[number], img: Uint8Array, seed: number): Uint8Array {
  const out = img.slice();
  new Augmenter(policy, SHAPE).apply(out, new SeededRng(seed));
  return out;
}

describe('augmentation policies', () => {
  it('every policy is a pure function of (image, rng state) and varies with the seed', () => {
    const img = image(1);
    for (const p of AUGMENTATIONS) {
      assert.deepEqual(augmented(p, img, 7), augmented(p, img, 7), p);
      if (p === 'none') {
        assert.deepEqual(augmented(p, img, 7), img);
        continue;
      }
      const distinct = new Set(Array.from({ length: 12 }, (_, s) => Buffer.from(augmented(p, img, s)).toString('base64')));
      assert.ok(distinct.size >= 6, `${p}: only ${distinct.size} distinct outputs of 12 seeds`);
    }
  });

  it('crop-flip draws (dy, dx, flip) like the fused path of batches.ts', () => {
    const img = image(2);
    for (let seed = 0; seed < 20; seed++) {
      const got = augmented('crop-flip', img, seed);
      const rng = new SeededRng(seed);
      const want = new Float32Array(SIZE);
      cropFlip(img, 0, want, 0, SHAPE, rng.int(9), rng.int(9), rng.next() < 0.5);
      for (let i = 0; i < SIZE; i++) assert.equal(Math.fround(got[i]! / 255), want[i], `seed ${seed} byte ${i}`);
    }
  });

  it('cutout-16 / cutout-18 zero one clipped L×L square of the crop-flip image, centre any pixel', () => {
    for (const [policy, L] of [
      ['cutout-16', 16],
      ['cutout-18', 18],
    ] as const) {
      let clipped = 0;
      for (let seed = 0; seed < 200; seed++) {
        const img = image(seed);
        const base = augmented('crop-flip', img, seed);
        const out = augmented(policy, img, seed);
        // Rows/columns where out differs from base: the square, all zeros there.
        let y0 = 32;
        let y1 = -1;
        let x0 = 32;
        let x1 = -1;
        for (let y = 0; y < 32; y++) {
          for (let x = 0; x < 32; x++) {
            for (let c = 0; c < 3; c++) {
              const i = (y * 32 + x) * 3 + c;
              if (out[i] !== base[i]) {
                assert.equal(out[i], 0);
                y0 = Math.min(y0, y);
                y1 = Math.max(y1, y);
                x0 = Math.min(x0, x);
                x1 = Math.max(x1, x);
              }
            }
          }
        }
        if (y1 < 0) continue; // the square fell on padding zeros only
        const h = y1 - y0 + 1;
        const w = x1 - x0 + 1;
        assert.ok(h <= L && w <= L, `${policy} seed ${seed}: ${h}×${w} square`);
        if (h < L || w < L) clipped++;
      }
      // Centres uniform over the image: a square of half-width L/2 is clipped with probability 1 − ((32 − L)/32)².
      assert.ok(clipped > 100, `${policy}: ${clipped}/200 clipped squares`);
    }
  });

  it("cutout's square: [c − L/2, c + L/2) clipped, the references' mask", () => {
    const check = (cy: number, cx: number, L: number, rows: [number, number], cols: [number, number]) => {
      const img = image(0);
      cutout(img, SHAPE, cy, cx, L);
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const inside = y >= rows[0] && y < rows[1] && x >= cols[0] && x < cols[1];
          const v = img[(y * 32 + x) * 3 + 1]!;
          assert.equal(v === 0, inside, `L ${L} centre (${cy}, ${cx}) at (${y}, ${x})`);
        }
      }
    };
    check(0, 0, 16, [0, 8], [0, 8]);
    check(31, 20, 16, [23, 32], [12, 28]);
    check(10, 10, 18, [1, 19], [1, 19]);
    check(16, 31, 18, [7, 25], [22, 32]);
  });

  it("IDBH's CropShift: crop, zero-pad, crop again (built step by step)", () => {
    const img = image(3);
    const rng = new SeededRng(5);
    for (let t = 0; t < 50; t++) {
      const strength = rng.int(11);
      const cropX = rng.int(strength + 1);
      const cropY = strength - cropX;
      const [t1x, t1y, t2x, t2y] = [rng.int(cropX + 1), rng.int(cropY + 1), rng.int(cropX + 1), rng.int(cropY + 1)];
      const got = new Uint8Array(SIZE);
      cropShift(img, got, SHAPE, cropX, cropY, t1x, t1y, t2x, t2y);
      // F.crop to (32 − cropY)×(32 − cropX), F.pad by [cropX, cropY], F.crop 32×32.
      const ch = 32 - cropY;
      const cw = 32 - cropX;
      const ph = ch + 2 * cropY;
      const pw = cw + 2 * cropX;
      const padded = new Uint8Array(ph * pw * 3);
      for (let y = 0; y < ch; y++) {
        for (let x = 0; x < cw; x++) {
          for (let c = 0; c < 3; c++) padded[((y + cropY) * pw + x + cropX) * 3 + c] = img[((y + t1y) * 32 + x + t1x) * 3 + c]!;
        }
      }
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          for (let c = 0; c < 3; c++) assert.equal(got[(y * 32 + x) * 3 + c], padded[((y + t2y) * pw + x + t2x) * 3 + c], `try ${t} (${y}, ${x})`);
        }
      }
    }
  });

  it("RandomErasing's box: area 2%..33% (±rounding), aspect 0.3..3.3, inside the image", () => {
    const rng = new SeededRng(11);
    let none = 0;
    for (let t = 0; t < 2000; t++) {
      const b = erasingBox(rng, SHAPE);
      if (!b) {
        none++;
        continue;
      }
      assert.ok(b.h >= 1 && b.w >= 1 && b.h < 32 && b.w < 32);
      assert.ok(b.top >= 0 && b.left >= 0 && b.top + b.h <= 32 && b.left + b.w <= 32);
      const area = b.h * b.w;
      assert.ok(area >= 0.02 * 1024 * 0.5 && area <= 0.33 * 1024 * 1.5, `area ${area}`);
    }
    assert.ok(none < 20, `${none} of 2000 without a box`);
  });

  it("autoaugment: the share of images left as crop-flip made them matches the table's probabilities", () => {
    // Ops that leave this image unchanged: color at bin 0 (factor 1), and an op of probability 0.
    const identity = (op: string, bin: number) => op === 'color' && bin === 0;
    let expected = 0;
    for (const [o1, p1, b1, o2, p2, b2] of AUTOAUGMENT_CIFAR10) {
      expected += (identity(o1, b1) ? 1 : 1 - p1) * (identity(o2, b2) ? 1 : 1 - p2);
    }
    expected /= AUTOAUGMENT_CIFAR10.length;
    const n = 4000;
    let same = 0;
    const img = image(4);
    for (let seed = 0; seed < n; seed++) {
      if (Buffer.compare(augmented('autoaugment', img, seed), augmented('crop-flip', img, seed)) === 0) same++;
    }
    const sd = Math.sqrt((expected * (1 - expected)) / n);
    assert.ok(Math.abs(same / n - expected) < 4 * sd + 0.01, `unchanged ${same / n}, expected ${expected.toFixed(3)} (some ops can be identities on an image)`);
  });

  it("randaugment-dm values at m = 14: ildoonet's ranges (posterize to 1 bit, translation 46.7 px)", () => {
    assert.equal(ILDOONET_OPS.length, 16);
    assert.equal(Math.max(1, Math.trunc(ildoonetValue('Posterize', 14))), 1);
    assert.ok(Math.abs(ildoonetValue('TranslateXabs', 14) - 46.6667) < 1e-3);
    assert.ok(Math.abs(ildoonetValue('Color', 14) - 0.94) < 1e-12);
  });

  it('applyBatch augments each image of a batch in order and touches nothing past n', () => {
    const n = 5;
    const batch = new Uint8Array((n + 1) * SIZE);
    for (let k = 0; k <= n; k++) batch.set(image(k), k * SIZE);
    const last = batch.slice(n * SIZE);
    augmentBatch('idbh-weak', batch, n, SHAPE, new SeededRng(3));
    const rng = new SeededRng(3);
    const aug = new Augmenter('idbh-weak', SHAPE);
    for (let k = 0; k < n; k++) {
      const one = image(k);
      aug.apply(one, rng);
      assert.deepEqual(batch.subarray(k * SIZE, (k + 1) * SIZE), one, `image ${k}`);
    }
    assert.deepEqual(batch.subarray(n * SIZE), last);
  });

  it('batches(): augment true is crop-flip, false is none, a policy name augments every sample', async () => {
    await noLeak(() => {
      const set = indexedSet(24);
      const pull = (augment: boolean | (typeof AUGMENTATIONS)[number]) =>
        [...batches(set, { batchSize: 8, shuffle: true, augment, seed: 3, epoch: 1 })].map((b) => {
          const x = b.x.dataSync().slice();
          tf.dispose([b.x, b.y]);
          return x;
        });
      assert.deepEqual(pull(true), pull('crop-flip'));
      assert.deepEqual(pull(false), pull('none'));
      const a = pull('autoaugment');
      const c = pull(true);
      assert.equal(a.length, 3);
      assert.notDeepEqual(a, c);
      for (const x of a) assert.ok(x.every((v) => v >= 0 && v <= 1));
    });
  });

  it('batches({ pair }): 2B rows, views A as without the pair, views B through the pair policy, labels twice', async () => {
    await noLeak(() => {
      const set = indexedSet(20);
      const opts = { batchSize: 8, shuffle: true, augment: true, seed: 4, epoch: 2 } as const;
      const plain = [...batches(set, opts)];
      const paired = [...batches(set, { ...opts, pair: 'autoaugment' })];
      const noAug = [...batches(set, { ...opts, augment: false })];
      assert.equal(paired.length, plain.length);
      paired.forEach((b, i) => {
        const n = plain[i]!.x.shape[0];
        assert.deepEqual(b.x.shape, [2 * n, 32, 32, 3]);
        const x = b.x.dataSync();
        const y = Array.from(b.y.dataSync());
        assert.deepEqual(x.slice(0, n * SIZE), plain[i]!.x.dataSync());
        assert.deepEqual(y, [...plain[i]!.y.dataSync(), ...plain[i]!.y.dataSync()]);
        assert.notDeepEqual(x.slice(n * SIZE), x.slice(0, n * SIZE));
      });
      // With crop-flip as the pair policy, view B of row k is one of the 162 crop-flips of row k's source image.
      const cf = [...batches(set, { ...opts, pair: 'crop-flip' })];
      cf.forEach((b, i) => {
        const n = noAug[i]!.x.shape[0];
        const xb = b.x.dataSync().slice(n * SIZE);
        const src = Uint8Array.from(noAug[i]!.x.dataSync(), (v) => Math.round(v * 255));
        for (let k = 0; k < n; k++) {
          const want = xb.slice(k * SIZE, (k + 1) * SIZE);
          const cand = new Float32Array(SIZE);
          let found = false;
          for (let dy = 0; dy <= 8 && !found; dy++) {
            for (let dx = 0; dx <= 8 && !found; dx++) {
              for (const flip of [false, true]) {
                cropFlip(src, k * SIZE, cand, 0, SHAPE, dy, dx, flip);
                if (cand.every((v, j) => v === want[j])) found = true;
              }
            }
          }
          assert.ok(found, `batch ${i} row ${k}: view B is no crop-flip of its source image`);
        }
      });
      for (const b of cf) tf.dispose([b.x, b.y]);
      for (const b of [...plain, ...paired, ...noAug]) tf.dispose([b.x, b.y]);
    });
  });

  it('runs in a worker thread on a shared buffer with the same result as on the main thread', async () => {
    const n = 4;
    const batch = new Uint8Array(n * SIZE);
    for (let k = 0; k < n; k++) batch.set(image(k + 20), k * SIZE);
    const want = batch.slice();
    augmentBatch('autoaugment-cutout', want, n, SHAPE, new SeededRng(9));
    const augmentUrl = new URL('../../src/data/augment.js', import.meta.url).href;
    const rngUrl = new URL('../../src/rng.js', import.meta.url).href;
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      Promise.all([import(${JSON.stringify(augmentUrl)}), import(${JSON.stringify(rngUrl)})]).then(([a, r]) => {
        const img = new Uint8Array(workerData.buf);
        a.augmentBatch('autoaugment-cutout', img, ${n}, { height: 32, width: 32, channels: 3 }, new r.SeededRng(9));
        parentPort.postMessage('done');
      });`;
    const shared = new SharedArrayBuffer(n * SIZE);
    new Uint8Array(shared).set(batch);
    await new Promise<void>((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { buf: shared } });
      w.once('message', () => resolve());
      w.once('error', reject);
    });
    assert.deepEqual(new Uint8Array(shared), want);
  });
});
