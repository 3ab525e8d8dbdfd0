/**
 * KD objectives against the official PyTorch code (fixtures of scripts/fixtures/torch_kd.py: DKL's IKL_KD.py
 * `dkl_loss`, the IKL_KD objective of its forward_train, mdistiller's KD and DKD), an O(C²) float64 definition
 * with finite differences, and the KD class prior of DKL's engine/trainer.py.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { assertClose, noLeak } from '../helpers.js';
import { ClassWeights, dkdLoss, iklKdLoss, kdLoss, warmupFactor, type IklKdOptions } from '../../src/losses/index.js';
import { InputError } from '../../src/errors.js';
import { asFloat32, data, finiteDiff, flat, logSoftmax, mean, randomMatrix, softmax, tfFiniteDiff, type Matrix } from './reference.js';

interface FixtureCase {
  name: string;
  kind: 'dkl_loss' | 'ikl_kd' | 'kd' | 'dkd';
  params: Record<string, number | boolean>;
  student: Matrix;
  teacher: Matrix;
  labels: number[];
  classPrior: Matrix;
  value: number;
  gradStudent: Matrix;
  gradTeacher: Matrix | null;
}
interface Fixture {
  cases: FixtureCase[];
  prior: { numClasses: number; temperature2: number; batches: Array<{ teacher: Matrix; labels: number[] }>; prior: Matrix };
}
const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/kd/losses.json', import.meta.url));
const fixture = JSON.parse(readFileSync(FIXTURE, 'utf8')) as Fixture;

/** Our loss for a fixture case, as a function of (student, teacher) tensors. */
function ours(c: FixtureCase, labels: tf.Tensor1D, classPrior: tf.Tensor2D): (s: tf.Tensor2D, t: tf.Tensor2D) => tf.Scalar {
  const p = c.params as Record<string, number>;
  const gi = c.params.gi === true;
  switch (c.kind) {
    case 'dkl_loss': // the distillation term alone: no CE, no ramp
    case 'ikl_kd': {
      const opts: IklKdOptions = {
        alpha: p.alpha!,
        beta: p.beta!,
        temperature: p.temperature,
        temperature2: p.temperature2,
        classPrior: gi ? classPrior : undefined,
        ceWeight: c.kind === 'dkl_loss' ? 0 : p.ceWeight,
        warmup: c.kind === 'dkl_loss' ? 1 : warmupFactor(p.epoch!, p.warmupEpochs!),
      };
      return (s, t) => iklKdLoss(s, t, labels, opts);
    }
    case 'kd':
      return (s, t) => kdLoss(s, t, labels, { temperature: p.temperature, ceWeight: p.ceWeight, kdWeight: p.kdWeight });
    case 'dkd':
      return (s, t) =>
        dkdLoss(s, t, labels, {
          alpha: p.alpha,
          beta: p.beta,
          temperature: p.temperature,
          ceWeight: p.ceWeight,
          warmup: warmupFactor(p.epoch!, p.warmupEpochs!),
        });
  }
}

for (const c of fixture.cases) {
  test(`${c.kind} equals the PyTorch reference (value, student gradient, no teacher gradient): ${c.name}`, async () => {
    await noLeak(() => {
      tf.tidy(() => {
        const labels = tf.tensor1d(c.labels, 'int32');
        const f = ours(c, labels, tf.tensor2d(c.classPrior));
        const s = tf.tensor2d(c.student);
        const t = tf.tensor2d(c.teacher);
        assertClose(data(f(s, t)), [c.value], 1e-5, 'value');
        const [gs, gt] = tf.grads((a, b) => f(a as tf.Tensor2D, b as tf.Tensor2D))([s, t]);
        // Gradients are compared relative to the largest one (a tiny entry has no meaningful relative error).
        const scale = Math.max(...flat(c.gradStudent).map(Math.abs));
        const rel = (m: ArrayLike<number>) => Array.from(m, (v) => v / scale);
        assertClose(rel(data(gs!)), rel(flat(c.gradStudent)), 1e-5, 'student gradient');
        assert.ok(
          data(gt!).every((g) => g === 0),
          'the teacher receives no gradient',
        );
      });
    });
  });
}

test('the reference dkl_loss itself differentiates its teacher argument: our stop-gradient is a deliberate choice', () => {
  // IKL_KD.forward_train computes the teacher under torch.no_grad(), so this gradient never reaches a weight there.
  const withTeacherGrad = fixture.cases.filter((c) => c.kind === 'dkl_loss' && c.gradTeacher !== null);
  assert.ok(withTeacherGrad.length > 0);
  assert.ok(withTeacherGrad.some((c) => flat(c.gradTeacher!).some((g) => Math.abs(g) > 1e-4)));
});

/** O(C²) float64 definition of the IKL-KD objective, per example (weights softmax(z_t/T2) or the prior row). */
function iklKdRef(
  s: Matrix,
  t: Matrix,
  y: number[],
  o: { alpha: number; beta: number; T: number; T2: number; ce: number; warm: number; prior?: Matrix },
): number[] {
  return s.map((zs, b) => {
    const zt = t[b]!;
    const w = o.prior ? o.prior[b]! : softmax(zt.map((v) => v / o.T2));
    let wmse = 0;
    for (let j = 0; j < zs.length; j++) {
      for (let k = 0; k < zs.length; k++) {
        const dt = zt[j]! - zt[k]!;
        const ds = zs[j]! - zs[k]!;
        wmse += w[j]! * w[k]! * (dt - ds) ** 2;
      }
    }
    const target = softmax(zt.map((v) => v / o.T));
    const logS = logSoftmax(zs.map((v) => v / o.T));
    const softCe = -target.reduce((acc, p, j) => acc + p * logS[j]!, 0);
    const ce = -logSoftmax(zs)[y[b]!]!;
    return o.ce * ce + o.warm * ((o.beta / 4) * wmse + o.alpha * softCe);
  });
}

for (const gi of [false, true]) {
  test(`iklKdLoss equals its O(C²) definition, per example and in finite differences (GI ${gi ? 'on' : 'off'})`, async () => {
    await noLeak(() => {
      const [B, C] = [5, 9];
      const s = asFloat32(randomMatrix(B, C, 71, 2));
      const t = asFloat32(randomMatrix(B, C, 72, 3));
      const y = [0, 3, 8, 3, 5];
      const prior = gi ? asFloat32(randomMatrix(B, C, 73, 1).map(softmax)) : undefined;
      const o = { alpha: 2, beta: 6, T: 3, T2: 5, ce: 0.7, warm: 0.4, prior };
      const expected = iklKdRef(s, t, y, o);
      const expectedGrad = flat(finiteDiff((m) => mean(iklKdRef(m, t, y, o)), s));
      tf.tidy(() => {
        const labels = tf.tensor1d(y, 'int32');
        const opts = { alpha: 2, beta: 6, temperature: 3, temperature2: 5, ceWeight: 0.7, warmup: 0.4, classPrior: prior && tf.tensor2d(prior) };
        const zs = tf.tensor2d(s);
        const zt = tf.tensor2d(t);
        assertClose(data(iklKdLoss(zs, zt, labels, { ...opts, reduction: 'none' })), expected, 1e-5, 'per-example value');
        assertClose(data(iklKdLoss(zs, zt, labels, { ...opts, reduction: 'sum' })), [expected.reduce((a, b) => a + b)], 1e-5, 'sum');
        const g = tf.grad((z) => iklKdLoss(z as tf.Tensor2D, zt, labels, opts))(zs);
        assertClose(data(g), expectedGrad, 1e-5, 'student gradient vs float64 finite differences');
      });
    });
  });
}

test('dkdLoss and kdLoss gradients agree with float32 finite differences of their own values', async () => {
  await noLeak(() => {
    const s = asFloat32(randomMatrix(4, 6, 81, 1.5));
    tf.tidy(() => {
      const t = tf.tensor2d(randomMatrix(4, 6, 82, 2));
      const labels = tf.tensor1d([1, 0, 5, 2], 'int32');
      for (const [name, f] of [
        ['dkd', (z: tf.Tensor2D) => dkdLoss(z, t, labels, { alpha: 1.5, beta: 3, temperature: 2, warmup: 0.5 })],
        ['kd', (z: tf.Tensor2D) => kdLoss(z, t, labels, { temperature: 3 })],
      ] as const) {
        const g = tf.grad((z) => f(z as tf.Tensor2D))(tf.tensor2d(s));
        assertClose(data(g), flat(tfFiniteDiff(f, s, 1e-2)), 2e-3, `${name} gradient`);
      }
    });
  });
});

test('dkdLoss: TCKD + NCKD equals plain KD when α = β = 1 and the target probabilities agree', async () => {
  // KL(p‖q) = KL(b_p‖b_q) + (1 − p_y)·KL(p̂‖q̂) (Zhao et al. 2022, eq. 2): with p_y = q_y the first term is 0 and
  // the factor (1 − p_y) multiplies NCKD. Teacher and student share the target logit and the non-target log-sum-exp.
  await noLeak(() => {
    tf.tidy(() => {
      const t = tf.tensor2d([[2, 0.5, -1, 0.3]]);
      const s = tf.tensor2d([[2, -1, 0.5, 0.3]]); // a permutation of the non-target logits
      const labels = tf.tensor1d([0], 'int32');
      const o = { temperature: 1, ceWeight: 0 };
      const kd = data(kdLoss(s, t, labels, { ...o, kdWeight: 1 }))[0]!;
      const tckd = data(dkdLoss(s, t, labels, { ...o, alpha: 1, beta: 0 }))[0]!;
      const nckd = data(dkdLoss(s, t, labels, { ...o, alpha: 0, beta: 1 }))[0]!;
      const pY = softmax([2, 0.5, -1, 0.3])[0]!;
      assert.ok(Math.abs(tckd) < 1e-6, `TCKD ${tckd}`);
      assertClose([kd], [(1 - pY) * nckd], 1e-5, 'KL = (1 − p_y)·NCKD');
      assert.ok(kd > 1e-3);
    });
  });
});

test('warmupFactor is min(epoch / WARMUP, 1) and scales only the distillation term', async () => {
  assert.equal(warmupFactor(1, 20), 0.05);
  assert.equal(warmupFactor(20, 20), 1);
  assert.equal(warmupFactor(240, 20), 1);
  assert.throws(() => warmupFactor(1, 0), InputError);
  await noLeak(() => {
    tf.tidy(() => {
      const s = tf.tensor2d(randomMatrix(3, 5, 91, 2));
      const t = tf.tensor2d(randomMatrix(3, 5, 92, 2));
      const labels = tf.tensor1d([0, 1, 2], 'int32');
      const at = (warmup: number, ceWeight = 1) => data(iklKdLoss(s, t, labels, { alpha: 1, beta: 8, temperature: 4, warmup, ceWeight }))[0]!;
      const ce = at(0);
      const kdTerm = at(1, 0);
      assertClose([at(0.25)], [ce + 0.25 * kdTerm], 1e-6, 'CE + 0.25·KD term');
      const dkd = (warmup: number) => data(dkdLoss(s, t, labels, { warmup }))[0]!;
      assertClose([dkd(0.5) - dkd(0)], [0.5 * (dkd(1) - dkd(0))], 1e-5, 'DKD ramp');
    });
  });
});

test('the KD class prior (ClassWeights at temperature T2 over teacher logits) equals engine/trainer.py', async () => {
  const p = fixture.prior;
  await noLeak(() => {
    const weights = new ClassWeights(p.numClasses, { temperature: p.temperature2 });
    try {
      // Epoch 1: uniform.
      assertClose(weights.matrix(), Array(p.numClasses * p.numClasses).fill(1 / p.numClasses), 1e-7, 'uniform in the first epoch');
      for (const batch of p.batches) {
        tf.tidy(() => weights.accumulate(tf.tensor2d(batch.teacher), tf.tensor1d(batch.labels, 'int32')));
      }
      weights.finalize();
      assertClose(weights.matrix(), flat(p.prior), 1e-6, 'prior after one epoch');
    } finally {
      weights.dispose();
    }
  });
});

test('KD losses reject mismatched shapes and bad options with InputError', () => {
  tf.tidy(() => {
    const s = tf.tensor2d([[1, 2, 3]]);
    const labels = tf.tensor1d([0], 'int32');
    assert.throws(() => iklKdLoss(s, tf.tensor2d([[1, 2]]), labels, { alpha: 1, beta: 1 }), /logitsTeacher must have the shape/);
    assert.throws(() => kdLoss(s, s, labels, { temperature: 0 }), /temperature/);
    assert.throws(() => dkdLoss(s, s, tf.tensor1d([0, 1], 'int32')), /labels has 2 entries/);
    assert.throws(() => iklKdLoss(s, s, labels, { alpha: 1, beta: -1 }), InputError);
    assert.throws(() => iklKdLoss(s, s, labels, { alpha: 1, beta: 1, classPrior: tf.tensor2d([[1, 0]]) }), /classPrior/);
  });
});
