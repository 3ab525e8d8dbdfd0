/**
 * The pieces of DM-Improves-AT's recipe against closed forms: the EMA decay, the OneCycle schedule's corner
 * values, SGD with a scheduled momentum and per-parameter weight decay, BN in train mode with frozen running
 * statistics, the first-step BN warm start, label smoothing on the clean CE only; and the trainer wiring.
 * (test/reference/recipe.test.ts replays the same pieces against the reference code.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { assertClose, heavy, noLeak } from '../helpers.js';
import { parseConfig } from '../../src/config/index.js';
import { emaDecay, burnInSteps } from '../../src/train/ema.js';
import { oneCycleAt, learningRate, momentumAt } from '../../src/train/schedules.js';
import { Sgd } from '../../src/train/sgd.js';
import { batchStatisticsModel, bnParameterMask, restoreBnMomentum, setBnMomentum } from '../../src/train/batchNorm.js';
import { trainingForward } from '../../src/models/forward.js';
import { objective } from '../../src/train/objective.js';
import { createTrainer, disposeTrainer, train, trainStep, RUN_FILES } from '../../src/train/index.js';
import { readCheckpoint } from '../../src/checkpoint/index.js';

test('emaDecay: 0 during the burn-in, then min(tau, (1+t-W)/(10+t-W)) (dynamic) or tau', () => {
  const o = { tau: 0.995, warmupSteps: 2.5, dynamic: true };
  assert.equal(emaDecay(1, o), 0);
  assert.equal(emaDecay(2, o), 0);
  assertClose([emaDecay(3, o)], [1.5 / 10.5], 1e-15, 't = 3');
  assertClose([emaDecay(12.5, o)], [11 / 20], 1e-15, 't − W = 10');
  // (1+d)/(10+d) ≥ 0.995 from d = 1790 on.
  assert.equal(emaDecay(2.5 + 1791, o), 0.995);
  assert.ok(emaDecay(2.5 + 1789, o) < 0.995);
  assert.equal(emaDecay(3, { ...o, dynamic: false }), 0.995);
  assertClose([emaDecay(1, { tau: 0.9, warmupSteps: 0, dynamic: true })], [2 / 11], 1e-15, 'no burn-in');
  assert.equal(burnInSteps(0.025, 400, 98), 980);
});

test('onecycle: lr/25 and momentum 0.95 first, lr and 0.85 at the end of the warm-up, lr/2.5e5 and 0.95 last', () => {
  const lr = 0.2;
  const T = 400; // warm-up ends at step 0.025·400 − 1 = 9
  assertClose([oneCycleAt(0, T, lr).lr, oneCycleAt(0, T, lr).momentum], [lr / 25, 0.95], 1e-12, 'first');
  assertClose([oneCycleAt(9, T, lr).lr, oneCycleAt(9, T, lr).momentum], [lr, 0.85], 1e-12, 'peak');
  assertClose([oneCycleAt(T - 1, T, lr).lr, oneCycleAt(T - 1, T, lr).momentum], [lr / 2.5e5, 0.95], 1e-12, 'last');
  // Half-way through the cosine: the mean of its ends.
  const mid = oneCycleAt(9 + (T - 1 - 9) / 2, T, lr);
  assertClose([mid.lr, mid.momentum], [(lr + lr / 2.5e5) / 2, 0.9], 1e-12, 'middle of phase 2');
  // Per epoch: epoch e is step e − 1; cycleMomentum false keeps optimizer.momentum.
  const s = { kind: 'onecycle' as const, lr, epochs: T };
  assert.equal(learningRate(s, 10), oneCycleAt(9, T, lr).lr);
  assert.equal(
    momentumAt(
      { ...s, oneCycle: { pctStart: 0.025, divFactor: 25, finalDivFactor: 1e4, cycleMomentum: false, baseMomentum: 0.85, maxMomentum: 0.95 } },
      5,
      0.9,
    ),
    0.9,
  );
  assert.equal(momentumAt({ kind: 'cosine', lr, epochs: T }, 5, 0.9), 0.9);
  // A warm-up of exactly one step (0.025·40 = 1): torch divides 0 by 0 there; we start at the peak.
  assertClose([oneCycleAt(0, 40, lr).lr], [lr], 1e-12, 'zero-length warm-up');
});

test('Sgd: weight decay only where decay says, the step momentum for buffer and Nesterov look-ahead', async () => {
  await noLeak(() => {
    const [a, b] = tf.tidy(() => [tf.variable(tf.tensor1d([1, -2]), false), tf.variable(tf.tensor1d([3]), false)]);
    const sgd = new Sgd([a, b], { momentum: 0.9, nesterov: true, weightDecay: 0.1, decay: [true, false] });
    const g = [tf.tensor1d([0.5, 0.25]), tf.tensor1d([1])];
    // Step 1 (lr 0.1, m 0.95): buf = g' = g + wd·θ (a only); θ ← θ − lr·(g' + m·buf).
    sgd.step(g, 0.1, 0.95);
    const ga = [0.5 + 0.1 * 1, 0.25 + 0.1 * -2];
    const a1 = [1 - 0.1 * ga[0]! * 1.95, -2 - 0.1 * ga[1]! * 1.95];
    const b1 = 3 - 0.1 * 1 * 1.95;
    assertClose(a.dataSync(), a1, 1e-6, 'a after step 1');
    assertClose(b.dataSync(), [b1], 1e-6, 'b after step 1 (no decay)');
    // Step 2 (lr 0.2, m 0.85): buf ← m·buf + g'.
    sgd.step(g, 0.2, 0.85);
    const ga2 = [0.5 + 0.1 * a1[0]!, 0.25 + 0.1 * a1[1]!];
    const bufA = [0.85 * ga[0]! + ga2[0]!, 0.85 * ga[1]! + ga2[1]!];
    const bufB = 0.85 * 1 + 1;
    assertClose(a.dataSync(), [a1[0]! - 0.2 * (ga2[0]! + 0.85 * bufA[0]!), a1[1]! - 0.2 * (ga2[1]! + 0.85 * bufA[1]!)], 1e-6, 'a after step 2');
    assertClose(b.dataSync(), [b1 - 0.2 * (1 + 0.85 * bufB)], 1e-6, 'b after step 2');
    tf.dispose([...g, a, b]);
    sgd.dispose();
  });
});

/** x → 1×1 conv (no bias) → BN → flatten → dense: the BN input is x·k, so its batch statistics are known. */
function convBn(): tf.LayersModel {
  const input = tf.input({ shape: [2, 2, 1] });
  const conv = tf.layers.conv2d({ filters: 1, kernelSize: 1, useBias: false, kernelInitializer: 'ones' }).apply(input) as tf.SymbolicTensor;
  const bn = tf.layers.batchNormalization({ momentum: 0.99, epsilon: 1e-5 }).apply(conv) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 2, kernelInitializer: 'ones' }).apply(tf.layers.flatten().apply(bn) as tf.SymbolicTensor) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}
const bnLayer = (m: tf.LayersModel) => m.layers.find((l) => l.getClassName() === 'BatchNormalization')!;
const running = (m: tf.LayersModel) =>
  bnLayer(m)
    .getWeights()
    .slice(2)
    .map((w) => w.dataSync()[0]!);
const xs = [1, 2, 3, 4, 5, 6, 7, 8];

test('batchStatisticsModel: batch statistics, running statistics untouched, momentum restored, differentiable in x', async () => {
  const m = convBn();
  await noLeak(() => {
    const before = running(m);
    const exec = batchStatisticsModel(m);
    const x = tf.tensor4d(xs, [2, 2, 2, 1]);
    // BN(x) with the batch's mean 4.5 and biased variance 5.25: the dense sums a sample's four normalised values.
    const expected = [0, 1].map((b) => xs.slice(4 * b, 4 * b + 4).reduce((s, v) => s + (v - 4.5) / Math.sqrt(5.25 + 1e-5), 0));
    const logits = exec.fn(x);
    assertClose(logits.dataSync(), [expected[0]!, expected[0]!, expected[1]!, expected[1]!], 1e-5, 'train-mode logits');
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.square(exec.fn(v as tf.Tensor4D))))(x);
    assert.ok(tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]!) > 0, 'gradient with respect to x');
    exec.dispose();
    assert.deepEqual(running(m), before, 'running statistics unchanged');
    assert.equal((bnLayer(m).getConfig() as { momentum: number }).momentum, 0.99, 'momentum restored');
    tf.dispose([x, logits, g]);
  });
  m.dispose();
});

test('BN warm start: Keras momentum 0 sets the running statistics to the batch statistics (PyTorch momentum 1)', async () => {
  const m = convBn();
  await noLeak(() => {
    const x = tf.tensor4d(xs, [2, 2, 2, 1]);
    const prev = setBnMomentum(m, 0);
    tf.dispose(trainingForward(m, x));
    restoreBnMomentum(m, prev);
    assertClose(running(m), [4.5, 5.25], 1e-6, 'running mean and (biased) variance');
    // Then the architecture's momentum: running ← 0.99·running + 0.01·batch.
    const x2 = tf.tensor4d(
      xs.map((v) => 2 * v),
      [2, 2, 2, 1],
    );
    tf.dispose(trainingForward(m, x2));
    assertClose(running(m), [0.99 * 4.5 + 0.01 * 9, 0.99 * 5.25 + 0.01 * 21], 1e-6, 'after a normal step');
    tf.dispose([x, x2]);
  });
  assert.deepEqual(bnParameterMask(m), [false, true, true, false, false], 'γ, β of the BN are its parameters');
  m.dispose();
});

test('label smoothing applies to the clean CE of trades and ikl-at, never to their robust term', async () => {
  await noLeak(() => {
    const C = 4;
    const zNat = [
      [1, 2, 0.5, -1],
      [0.2, -0.3, 1.5, 0],
    ];
    const zAdv = [
      [0.5, 2.5, 0, -1],
      [0.1, 0.3, 1, 0.2],
    ];
    const y = tf.tensor1d([1, 2], 'int32');
    const x = tf.tensor4d(zNat.flat(), [2, 1, 1, C]);
    const xa = tf.tensor4d(zAdv.flat(), [2, 1, 1, C]);
    const fwd = (v: tf.Tensor4D): tf.Tensor2D => tf.reshape(v, [v.shape[0], C]);
    const base = { alpha: 3, beta: 10, gamma: 1, temperature: 1, tradesBeta: 5 };
    const smoothCe =
      zNat
        .map((r, b) => {
          const lse = Math.log(r.reduce((s, v) => s + Math.exp(v), 0));
          const logp = r.map((v) => v - lse);
          const label = [1, 2][b]!;
          return -(0.9 * logp[label]! + (0.1 / C) * logp.reduce((s, v) => s + v, 0));
        })
        .reduce((s, v) => s + v, 0) / 2;
    for (const type of ['trades', 'ikl-at'] as const) {
      const [smooth, plain] = [0.1, 0].map((ls) =>
        tf.tidy(() => {
          const q = objective(fwd, x, y, xa, undefined, { ...base, type, labelSmoothing: ls });
          return [q.natural!.dataSync()[0]!, q.robust!.dataSync()[0]!];
        }),
      );
      assertClose([smooth![0]!], [smoothCe], 1e-5, `${type}: smoothed clean CE`);
      assert.equal(smooth![1], plain![1], `${type}: the robust term does not see the labels`);
    }
    tf.dispose([x, xa, y]);
  });
});

test("passOrder: clean-first runs f(x) before f(x') (DM-Improves-AT), the default f(x') first (DKL); same loss", async () => {
  await noLeak(() => {
    const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8], [2, 1, 1, 4]);
    const xa = tf.tensor4d([2, 1, 3, 5, 4, 6, 8, 7], [2, 1, 1, 4]);
    const y = tf.tensor1d([1, 2], 'int32');
    for (const type of ['trades', 'ikl-at'] as const) {
      const totals: number[] = [];
      for (const passOrder of ['adversarial-first', 'clean-first'] as const) {
        const seen: string[] = [];
        const fwd = (v: tf.Tensor4D): tf.Tensor2D => {
          seen.push(v === x ? 'clean' : 'adv');
          return tf.reshape(v, [v.shape[0], 4]);
        };
        totals.push(
          tf.tidy(
            () =>
              objective(fwd, x, y, xa, undefined, {
                type,
                alpha: 3,
                beta: 10,
                gamma: 1,
                temperature: 1,
                tradesBeta: 5,
                labelSmoothing: 0,
                passOrder,
              }).total.dataSync()[0]!,
          ),
        );
        assert.deepEqual(seen, passOrder === 'clean-first' ? ['clean', 'adv'] : ['adv', 'clean'], `${type} ${passOrder}`);
      }
      assert.equal(totals[0], totals[1]);
    }
    tf.dispose([x, xa, y]);
  });
});

const recipe = {
  model: { arch: 'small-cnn', numClasses: 10, bnMomentum: 0.01, bnWarmStart: true },
  objective: { type: 'trades', tradesBeta: 5, labelSmoothing: 0.1 },
  attack: { steps: 2, start: 'uniform', stepSize: { absolute: 2 / 255 }, schedule: 'constant', bnMode: 'train' },
  awp: { enabled: false },
  classWeights: { enabled: false },
  optimizer: { lr: 0.05, nesterov: true, bnWeightDecay: false },
  weightAverage: { enabled: true, perStep: true, stepTau: 0.995, burnIn: 0.025, dynamicDecay: true, bnStatistics: 'model' },
};

test('createTrainer: BN momentum in PyTorch convention, no decay on BN parameters, EMA copying the BN statistics', () => {
  const t = createTrainer(parseConfig({ data: { dataset: 'synthetic' }, ...recipe }, 'test config'));
  const bns = t.model.layers.filter((l) => l.getClassName() === 'BatchNormalization');
  assert.ok(bns.length > 0);
  for (const l of bns) assert.equal((l.getConfig() as { momentum: number }).momentum, 0.99);
  const decay = t.optimizer.options.decay!;
  assert.deepEqual(
    decay,
    bnParameterMask(t.model).map((bn) => !bn),
  );
  assert.ok(decay.some((d) => !d) && decay.some((d) => d));
  assert.deepEqual(
    t.weightAverage!.copy,
    t.model.weights.map((w) => !w.trainable),
  );
  disposeTrainer(t);
});

test('a run with the whole recipe: onecycle lr and momentum per epoch, EMA decays per step, wa/ written', heavy, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ikl-recipe-'));
  try {
    const config = parseConfig(
      {
        run: { seed: 3, progress: false },
        data: { dataset: 'synthetic', synthetic: { nTrain: 48, nTest: 16 }, valSize: 16, batchSize: 16 },
        ...recipe,
        schedule: { type: 'onecycle', epochs: 2 },
        eval: { nExamples: 16, pgdSteps: 1 },
      },
      'test config',
    );
    const momenta: number[] = [];
    const counts: number[] = [];
    let tensors: number | undefined;
    const result = await train(config, {
      runDir: dir,
      onStep: (info, t) => {
        momenta.push(t.model.layers.filter((l) => l.getClassName() === 'BatchNormalization').map((l) => (l.getConfig() as { momentum: number }).momentum)[0]!);
        counts.push(t.weightAverage!.count);
        if (info.step === 2) tensors = tf.memory().numTensors;
        if (info.step === 4) assert.equal(tf.memory().numTensors, tensors, 'tensors constant across steps');
      },
    });
    assert.equal(result.steps, 4);
    // The warm start's momentum 0 is put back after the first step.
    assert.deepEqual(momenta, [0.99, 0.99, 0.99, 0.99]);
    // The average starts from the initial weights (count 1), then one update per step.
    assert.deepEqual(counts, [2, 3, 4, 5]);
    assert.deepEqual(
      result.metrics.map((m) => m.lr),
      [1, 2].map((e) => oneCycleAt(e - 1, 2, 0.05).lr),
    );
    assert.ok(existsSync(join(dir, RUN_FILES.wa)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('trainStep with bnWarmStart: the running statistics after the first step do not depend on where they started', heavy, async () => {
  const config = parseConfig({ data: { dataset: 'synthetic', batchSize: 8 }, ...recipe }, 'test config');
  const x = tf.randomUniform([8, 32, 32, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
  const y = tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], 'int32');
  const runningAfter = (warm: boolean, start: number): Float32Array[] => {
    const t = createTrainer(config);
    // Running statistics moved away from their initial values (the attack uses batch statistics: x' is the same).
    for (const w of t.model.weights.filter((v) => !v.trainable)) {
      tf.tidy(() => {
        w.write(tf.add(tf.mul(w.read(), 0), start));
      });
    }
    trainStep(t, x, y, { lr: 0.05, epsilon: 8 / 255, stepSize: 2 / 255, awp: false, seed: 1, bnWarmStart: warm });
    const out = t.model.weights.filter((v) => !v.trainable).map((w) => w.read().dataSync() as Float32Array);
    disposeTrainer(t);
    return out;
  };
  const a = runningAfter(true, 0.5);
  const b = runningAfter(true, 3);
  a.forEach((v, i) => assertClose(v, b[i]!, 1e-5, `warm start: running statistic ${i}`));
  const c = runningAfter(false, 0.5);
  const d = runningAfter(false, 3);
  assert.ok(
    c.some((v, i) => v.some((e, j) => Math.abs(e - d[i]![j]!) > 0.1)),
    'without it the start shows through (momentum 0.01)',
  );
  tf.dispose([x, y]);
});

test('resume with the whole recipe: a mid-epoch stop + resume gives the straight run weights and EMA', heavy, async () => {
  const config = () =>
    parseConfig(
      {
        run: { seed: 4, progress: false },
        data: { dataset: 'synthetic', synthetic: { nTrain: 64, nTest: 16 }, valSize: 16, batchSize: 16 },
        ...recipe,
        weightAverage: { ...recipe.weightAverage, burnIn: 0.2 },
        schedule: { type: 'onecycle', epochs: 2, oneCycle: { pctStart: 0.5 } },
        eval: { nExamples: 16, pgdSteps: 1 },
      },
      'test config',
    );
  const straight = mkdtempSync(join(tmpdir(), 'ikl-recipe-a-'));
  const split = mkdtempSync(join(tmpdir(), 'ikl-recipe-b-'));
  const weights = async (dir: string, which: 'last' | 'wa'): Promise<Float32Array[]> => {
    const ck = await readCheckpoint(join(dir, RUN_FILES[which]));
    const w = ck.model.weights.map((v) => v.read().dataSync() as Float32Array);
    ck.model.dispose();
    return w;
  };
  try {
    const a = await train(config(), { runDir: straight });
    const signal = { stopRequested: false };
    const b1 = await train(config(), { runDir: split, signal, onStep: (i) => (signal.stopRequested = i.epoch === 2 && i.batch === 0) });
    assert.equal(b1.stopped, 'signal');
    const b2 = await train(config(), { runDir: split, resume: true });
    assert.equal(b2.steps, a.steps);
    for (const which of ['last', 'wa'] as const) {
      const [wa, wb] = [await weights(straight, which), await weights(split, which)];
      wa.forEach((v, i) => assertClose(v, wb[i]!, 1e-6, `${which}: weight ${i}`));
    }
    // The EMA differs from the live weights: the comparison of wa/ is not that of last/ again.
    const [live, ema] = [await weights(straight, 'last'), await weights(straight, 'wa')];
    assert.ok(live.some((v, i) => v.some((e, j) => Math.abs(e - ema[i]![j]!) > 1e-6)));
  } finally {
    for (const d of [straight, split]) rmSync(d, { recursive: true, force: true });
  }
});
