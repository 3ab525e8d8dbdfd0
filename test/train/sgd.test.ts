import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { noLeak, assertClose } from '../helpers.js';
import { Sgd } from '../../src/train/sgd.js';

/** PyTorch's SGD written out on plain arrays, one parameter vector. */
function reference(theta: number[], grads: number[][], lrs: number[], m: number, wd: number, nesterov: boolean): number[] {
  const t = theta.slice();
  let buf: number[] | null = null;
  grads.forEach((g0, s) => {
    const g = g0.map((v, i) => v + wd * t[i]!);
    buf = buf === null ? g.slice() : buf.map((b, i) => m * b + g[i]!);
    const d = nesterov ? g.map((v, i) => v + m * buf![i]!) : buf;
    for (let i = 0; i < t.length; i++) t[i]! -= lrs[s]! * d[i]!;
  });
  return t;
}

/** A variable from plain numbers without leaving the initial tensor behind. */
const vec = (x: number[]): tf.Variable => tf.tidy(() => tf.variable(tf.tensor1d(x)));

const theta0 = [0.5, -1.25, 2];
const grads = [
  [0.1, -0.2, 0.3],
  [-0.4, 0.05, 0.6],
  [0.2, 0.2, -0.1],
];
const lrs = [0.2, 0.1, 0.05];

for (const nesterov of [false, true]) {
  test(`sgd matches a hand-computed 3-step sequence (nesterov=${nesterov})`, async () => {
    await noLeak(() => {
      const v = vec(theta0);
      const opt = new Sgd([v], { momentum: 0.9, nesterov, weightDecay: 5e-4 });
      grads.forEach((g, s) => {
        const gt = tf.tensor1d(g);
        opt.step([gt], lrs[s]!);
        gt.dispose();
      });
      assertClose(v.dataSync(), reference(theta0, grads, lrs, 0.9, 5e-4, nesterov), 1e-6, 'theta');
      // First step by hand: θ1 = θ0 − 0.2·(g0 + 5e-4·θ0) (the buffer starts at g, not 0).
      opt.dispose();
      v.dispose();
    });
  });
}

test('sgd state export/restore continues the same trajectory', async () => {
  await noLeak(() => {
    const a = vec(theta0);
    const optA = new Sgd([a], { momentum: 0.9, nesterov: false, weightDecay: 5e-4 });
    const g = grads.map((x) => tf.tensor1d(x));
    optA.step([g[0]], lrs[0]!);
    const state = optA.getState();
    assert.deepEqual(Object.keys(state), ['sgd/momentum/0']);
    const b = vec(Array.from(a.dataSync()));
    const optB = new Sgd([b], { momentum: 0.9, nesterov: false, weightDecay: 5e-4 });
    optB.setState(state);
    tf.dispose(state);
    for (let s = 1; s < 3; s++) {
      optA.step([g[s]], lrs[s]!);
      optB.step([g[s]], lrs[s]!);
    }
    assert.deepEqual(Array.from(b.dataSync()), Array.from(a.dataSync()));
    // Without the restored buffer the trajectory differs: the state matters.
    const c = vec(reference(theta0, [grads[0]!], [lrs[0]!], 0.9, 5e-4, false));
    const optC = new Sgd([c], { momentum: 0.9, nesterov: false, weightDecay: 5e-4 });
    for (let s = 1; s < 3; s++) optC.step([g[s]], lrs[s]!);
    assert.notDeepEqual(Array.from(c.dataSync()), Array.from(a.dataSync()));
    tf.dispose([...g, a, b, c]);
    optA.dispose();
    optB.dispose();
    optC.dispose();
  });
});
