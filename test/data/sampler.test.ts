import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deriveSeed, permutation, SeededRng } from '../../src/rng.js';
import { EpochSampler, MixedSampler, epochOrder, openSampler, TAG_SHUFFLE, uniformIndex, type SamplerSpec } from '../../src/data/sampler.js';

/**
 * DM-Improves-AT's SemiSupervisedSampler.__iter__ (core/data/semisup.py), transcribed as a generator with its
 * random calls supplied: `randperm(passIndex)` for torch.randperm, `extras(batch, count)` for torch.randint,
 * `shuffle(batch, list)` for np.random.shuffle. Only the structure is under test here; the draws are ours.
 */
function* referenceIter(
  sup: number[],
  batchSize: number,
  unsupFraction: number,
  numBatches: number,
  randperm: (pass: number) => Uint32Array,
  extras: (batch: number, count: number) => number[],
  shuffle: (batch: number, list: number[]) => number[],
): Generator<number[]> {
  const supBatch = batchSize - Math.floor(batchSize * unsupFraction);
  let counter = 0;
  let pass = 0;
  while (counter < numBatches) {
    const perm = randperm(pass++);
    const shuffled = Array.from(perm, (i) => sup[i]!);
    for (let k = 0; k < sup.length; k += supBatch) {
      if (counter === numBatches) break;
      let batch = shuffled.slice(k, k + supBatch);
      if (supBatch < batchSize) batch = [...batch, ...extras(counter, batchSize - batch.length)];
      yield shuffle(counter, batch);
      counter++;
    }
  }
}

const spec = (over: Partial<Extract<SamplerSpec, { kind: 'mixed' }>> = {}): Extract<SamplerSpec, { kind: 'mixed' }> => ({
  kind: 'mixed',
  nReal: 1000,
  nExtra: 5000,
  batchSize: 64,
  fraction: 0.7,
  numBatches: 17,
  seed: 4,
  ...over,
});

const sorted = (a: ArrayLike<number>) => Array.from(a).sort((x, y) => x - y);

describe('MixedSampler (the reference semi-supervised sampler)', () => {
  it('has the structure of SemiSupervisedSampler: same real chunks, passes, top-ups, batch sizes', () => {
    for (const s of [
      spec(),
      spec({ nReal: 100, batchSize: 32, fraction: 0.5, numBatches: 13 }), // 16 real per batch: 7 chunks per pass, 2 passes
      spec({ nReal: 90, batchSize: 32, fraction: 0, numBatches: 4 }), // f = 0: chunks of 32, short last chunk stays short
      spec({ nReal: 50, batchSize: 10, fraction: 0.35, numBatches: 9 }), // 7 real per batch, last chunk of 1 topped up
    ]) {
      const sampler = new MixedSampler(s);
      const epoch = 3;
      const sup = Array.from({ length: s.nReal }, (_, i) => i);
      const ours = Array.from({ length: sampler.numBatches }, (_, i) => sampler.batch(epoch, i));
      const ref = [
        ...referenceIter(
          sup,
          s.batchSize,
          s.fraction,
          s.numBatches,
          (pass) => permutation(s.nReal, new SeededRng(deriveSeed(s.seed, epoch, pass, TAG_SHUFFLE))),
          // The generated indices and the in-batch order of the batch we produced: the structure must agree.
          (batch, count) =>
            Array.from(ours[batch]!)
              .filter((v) => v >= s.nReal)
              .slice(0, count),
          (batch, list) => {
            assert.deepEqual(sorted(list), sorted(ours[batch]!), `batch ${batch}: same multiset as the reference`);
            return Array.from(ours[batch]!);
          },
        ),
      ];
      assert.equal(ref.length, s.numBatches);
      ours.forEach((b, i) => {
        assert.equal(b.length, ref[i]!.length, `batch ${i} size`);
        const extra = b.filter((v) => v >= s.nReal).length;
        const expectExtra = ref[i]!.length - ref[i]!.filter((v) => v < s.nReal).length;
        assert.equal(extra, expectExtra, `batch ${i}: generated count`);
      });
    }
  });

  it('floor(B·f) generated per batch, the rest real without replacement within a pass; ceil(N/B) batches', () => {
    const s = spec({ nReal: 2000, batchSize: 100, fraction: 0.7, numBatches: Math.ceil(2000 / 100) });
    const sampler = new MixedSampler(s);
    assert.equal(sampler.realPerBatch, 30);
    assert.equal(sampler.numBatches, 20);
    const seen = new Set<number>();
    for (let i = 0; i < sampler.numBatches; i++) {
      const b = sampler.batch(0, i);
      assert.equal(b.length, 100);
      const real = Array.from(b).filter((v) => v < s.nReal);
      assert.equal(real.length, 30, `batch ${i}`);
      for (const r of real) {
        assert.ok(!seen.has(r), `real image ${r} drawn twice in one epoch`);
        seen.add(r);
      }
      assert.ok(Array.from(b).every((v) => v < s.nReal + s.nExtra));
    }
    assert.equal(seen.size, 600);
  });

  it('generated images are uniform (chi-square) and drawn with replacement', () => {
    const s = spec({ nReal: 100, nExtra: 50, batchSize: 100, fraction: 0.9, numBatches: 200 });
    const sampler = new MixedSampler(s);
    const counts = new Array<number>(50).fill(0);
    let repeatsInBatch = 0;
    for (let i = 0; i < 200; i++) {
      const ex = Array.from(sampler.batch(1, i)).filter((v) => v >= 100);
      assert.equal(ex.length, 90);
      if (new Set(ex).size < ex.length) repeatsInBatch++;
      for (const v of ex) counts[v - 100]!++;
    }
    const total = 200 * 90;
    const expected = total / 50;
    const chi2 = counts.reduce((a, c) => a + (c - expected) ** 2 / expected, 0);
    // 49 degrees of freedom: mean 49, sd ~9.9; 100 is beyond the 99.99th percentile.
    assert.ok(chi2 < 100, `chi-square ${chi2.toFixed(1)} over 49 d.o.f.`);
    assert.equal(repeatsInBatch, 200, 'with replacement: 90 draws of 50 images always repeat');
  });

  it('the batch is shuffled: generated images are spread over the positions', () => {
    const sampler = new MixedSampler(spec({ batchSize: 100, fraction: 0.5 }));
    let firstHalf = 0;
    for (let i = 0; i < 10; i++) firstHalf += Array.from(sampler.batch(0, i).subarray(0, 50)).filter((v) => v >= 1000).length;
    // 500 generated of 1000 positions; a non-shuffled batch would put 0 in the first half.
    assert.ok(firstHalf > 180 && firstHalf < 320, `${firstHalf} generated in first halves`);
  });

  it('is a pure function of (seed, epoch, batch): any order, any instance, a worker thread', () => {
    const s = spec();
    const a = new MixedSampler(s);
    const forward = Array.from({ length: s.numBatches }, (_, i) => Array.from(a.batch(2, i)));
    const b = openSampler(structuredClone(a.spec()));
    for (let i = s.numBatches - 1; i >= 0; i--) assert.deepEqual(Array.from(b.batch(2, i)), forward[i], `batch ${i} out of order`);
    assert.deepEqual(Array.from(b.batch(5, 0)), Array.from(a.batch(5, 0)));
    assert.notDeepEqual(Array.from(a.batch(3, 0)), forward[0], 'a fresh permutation each epoch');
    assert.notDeepEqual(Array.from(new MixedSampler({ ...s, seed: 5 }).batch(2, 0)), forward[0], 'the seed matters');
  });

  it('refuses generated draws from nothing and a fraction outside [0, 1)', () => {
    assert.throws(() => new MixedSampler(spec({ fraction: 1 })), /fraction/);
    assert.throws(() => new MixedSampler(spec({ nExtra: 0 })), /no generated images/);
  });
});

describe('EpochSampler', () => {
  it('cuts permutation(seed, epoch) into batches, the last one short', () => {
    const s = new EpochSampler({ kind: 'epoch', n: 10, batchSize: 4, shuffle: true, dropLast: false, seed: 1 });
    const order = Array.from(epochOrder(10, 1, 7));
    assert.deepEqual(
      [0, 1, 2].map((i) => Array.from(s.batch(7, i))),
      [order.slice(0, 4), order.slice(4, 8), order.slice(8)],
    );
    const plain = new EpochSampler({ kind: 'epoch', n: 10, batchSize: 4, shuffle: false, dropLast: true, seed: 1 });
    assert.equal(plain.numBatches, 2);
    assert.deepEqual(Array.from(plain.batch(0, 1)), [4, 5, 6, 7]);
  });
});

describe('uniformIndex', () => {
  it('covers [0, n) uniformly for n beyond 2^32 / 100 (where 32 random bits would be visibly biased)', () => {
    const rng = new SeededRng(9);
    const n = 50_000_000;
    const buckets = new Array<number>(10).fill(0);
    for (let i = 0; i < 100_000; i++) {
      const v = uniformIndex(rng, n);
      assert.ok(Number.isInteger(v) && v >= 0 && v < n);
      buckets[Math.floor(v / (n / 10))]!++;
    }
    for (const b of buckets) assert.ok(Math.abs(b - 10_000) < 500, `bucket ${b}`);
  });
});
