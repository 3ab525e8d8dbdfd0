import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deriveSeed, permutation, SeededRng } from '../src/rng.js';

describe('SeededRng', () => {
  it('fromState(state()) continues the same sequence', () => {
    const a = new SeededRng(42);
    for (let i = 0; i < 5; i++) a.next();
    const b = SeededRng.fromState(a.state());
    const seqA = Array.from({ length: 20 }, () => a.nextUint32());
    const seqB = Array.from({ length: 20 }, () => b.nextUint32());
    assert.deepEqual(seqB, seqA);
    const c = new SeededRng(43);
    const d = new SeededRng(42);
    assert.notDeepEqual(
      Array.from({ length: 20 }, () => c.nextUint32()),
      Array.from({ length: 20 }, () => d.nextUint32()),
    );
  });

  it('int(n) is roughly uniform (chi-square) and next() stays in [0, 1)', () => {
    const rng = new SeededRng(7);
    const counts = new Array<number>(9).fill(0);
    const N = 90_000;
    for (let i = 0; i < N; i++) counts[rng.int(9)]!++;
    const e = N / 9;
    const chi2 = counts.reduce((s, c) => s + (c - e) ** 2 / e, 0);
    assert.ok(chi2 < 26.1, `chi-square ${chi2} (8 dof, p = 0.001 at 26.1)`);
    for (let i = 0; i < 10_000; i++) {
      const v = rng.next();
      assert.ok(v >= 0 && v < 1);
    }
    let sum = 0,
      sq = 0;
    for (let i = 0; i < 20_000; i++) {
      const z = rng.normal();
      sum += z;
      sq += z * z;
    }
    assert.ok(Math.abs(sum / 20_000) < 0.03 && Math.abs(sq / 20_000 - 1) < 0.05, 'normal(): mean 0, variance 1');
  });

  it('deriveSeed depends on every part and on their order', () => {
    const seeds = new Set<number>();
    for (let s = 0; s < 20; s++) for (let e = 0; e < 20; e++) for (let i = 0; i < 20; i++) seeds.add(deriveSeed(s, e, i));
    assert.equal(seeds.size, 8000, 'no collisions on a small grid');
    assert.notEqual(deriveSeed(1, 2), deriveSeed(2, 1));
    assert.notEqual(deriveSeed(1), deriveSeed(1, 0));
    assert.notEqual(deriveSeed(2 ** 40), deriveSeed(0), 'high bits count');
    assert.throws(() => deriveSeed(0.5), RangeError);
  });

  it('permutation is a permutation and depends on the generator', () => {
    const p = permutation(1000, new SeededRng(1));
    assert.deepEqual(
      [...p].sort((a, b) => a - b),
      Array.from({ length: 1000 }, (_, i) => i),
    );
    assert.notDeepEqual(Array.from(permutation(1000, new SeededRng(2))), Array.from(p));
  });
});
