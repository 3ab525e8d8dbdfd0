/**
 * Knowledge distillation in the trainer: the quick preset end to end at tiny size (teacher run, then the
 * distillation run from configs/kd/quick.yaml), the frozen teacher, the class prior accumulated from the
 * teacher, exact resume, and refusals.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { heavy, noLeak, randomImages } from '../helpers.js';
import { resolveConfig } from '../../src/config/index.js';
import { readCheckpoint } from '../../src/checkpoint/index.js';
import { batches, loadDataset, splitValidation } from '../../src/data/index.js';
import { createModel, forward } from '../../src/models/index.js';
import { crossEntropy, dkdLoss, iklKdLoss, kdLoss } from '../../src/losses/index.js';
import { objective } from '../../src/train/objective.js';
import { epochSettings, train, RUN_FILES } from '../../src/train/index.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'ikl-kd-'));

/** The presets at tiny size: 48 training images in 3 batches of 16, 2 epochs. */
const TINY = [
  'run.progress=false',
  'data.synthetic.nTrain=64',
  'data.synthetic.nTest=16',
  'data.valSize=16',
  'data.batchSize=16',
  'schedule.epochs=2',
  'eval.nExamples=16',
  'eval.pgdSteps=1',
];

const teacherConfig = () => resolveConfig({ file: 'configs/kd/quick-teacher.yaml', sets: TINY });
const studentConfig = (teacherDir: string, more: string[] = []) =>
  resolveConfig({ file: 'configs/kd/quick.yaml', sets: [...TINY, `teacher.checkpoint=${join(teacherDir, RUN_FILES.last)}`, ...more] });

/** Every weight of a model, BN running statistics included, copied to the host. */
const snapshot = (model: tf.LayersModel): Float32Array[] => model.weights.map((w) => w.read().dataSync() as Float32Array);

function maxDiff(a: Float32Array[], b: Float32Array[]): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  a.forEach((x, i) => x.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - b[i]![j]!)))));
  return worst;
}

async function lastWeights(runDir: string): Promise<Float32Array[]> {
  const ck = await readCheckpoint(join(runDir, RUN_FILES.last));
  const w = snapshot(ck.model);
  ck.model.dispose();
  return w;
}

test('the KD config: objective names, warm-up by epoch, and a KD objective without a teacher is refused', () => {
  const c = resolveConfig({ file: 'configs/kd/quick.yaml', sets: ['run.progress=false'] });
  assert.equal(c.objective.type, 'ikl-kd');
  assert.equal(c.distill.warmupEpochs, 2);
  assert.deepEqual(
    [1, 2, 3].map((e) => epochSettings(c, e).kdWarmup),
    [0.5, 1, 1],
  );
  const kd = resolveConfig({ file: 'configs/kd/quick.yaml', sets: ['objective.type=kd'] });
  assert.equal(epochSettings(kd, 1).kdWarmup, 1, 'Hinton KD has no warm-up in mdistiller');
  assert.throws(() => resolveConfig({ sets: ['objective.type=ikl-kd'] }), /teacher\.checkpoint: expected the teacher's checkpoint directory/);
  assert.throws(() => resolveConfig({ sets: ['objective.type=dkd', 'teacher.checkpoint=x', 'teacher.arch=resnet9'] }), /teacher\.arch: expected one of/);
});

test('quick KD preset at tiny size: teacher run, then distillation; the teacher is frozen; the class prior is the teacher mean per class', heavy, async () => {
  const teacherDir = tmp();
  const studentDir = tmp();
  try {
    await train(teacherConfig(), { runDir: teacherDir });
    const config = studentConfig(teacherDir);
    // The prior the trainer should hold during epoch 2: per class, the mean of softmax(z_t/T2) over the
    // training images of epoch 1 (independent of order and augmentation-free in the preset).
    const expected = await expectedPrior(config, join(teacherDir, RUN_FILES.last));
    let teacher0: Float32Array[] | undefined;
    let teacherLast: Float32Array[] | undefined;
    let student0: Float32Array[] | undefined;
    const priors: Array<{ epoch: number; m: Float32Array }> = [];
    const counts: number[] = [];
    let frozen: { trainable: boolean; optimisedTeacherVars: number; bnStats: number } | undefined;
    const res = await noLeak(() =>
      train(config, {
        runDir: studentDir,
        onStep: (info, tr) => {
          if (!teacher0) {
            teacher0 = snapshot(tr.teacher!.model);
            student0 = snapshot(tr.model);
            const teacherVars = new Set(tr.teacher!.model.weights.map((w) => w.read().id));
            frozen = {
              trainable: tr.teacher!.model.trainable,
              optimisedTeacherVars: tr.params.filter((p) => teacherVars.has(p.id)).length,
              bnStats: tr.teacher!.model.weights.filter((w) => /moving_(mean|variance)/.test(w.name)).length,
            };
          }
          teacherLast = snapshot(tr.teacher!.model);
          priors.push({ epoch: info.epoch, m: tr.kdPrior!.matrix() });
          counts.push(tf.memory().numTensors);
        },
      }),
    );
    assert.equal(res.metrics.length, 2);
    assert.equal(res.steps, 6);
    assert.ok(
      counts.slice(1).every((c) => c === counts[1]),
      `numTensors across steps: ${counts.join(', ')}`,
    );
    // Frozen: not trainable, none of its variables among the optimiser's, every weight (BN running mean and
    // variance included) bit-identical after 6 steps, while the student's moved.
    assert.deepEqual({ ...frozen!, bnStats: frozen!.bnStats > 0 }, { trainable: false, optimisedTeacherVars: 0, bnStats: true });
    assert.equal(maxDiff(teacher0!, teacherLast!), 0, 'teacher weights and BN statistics never move');
    assert.ok(maxDiff(student0!, await lastWeights(studentDir)) > 1e-4, 'the student learns');
    // Epoch 1 on the uniform prior, epoch 2 on the teacher's class means of epoch 1.
    for (const p of priors.filter((r) => r.epoch === 1))
      assert.ok(
        p.m.every((v) => Math.abs(v - 0.1) < 1e-7),
        'uniform in epoch 1',
      );
    for (const p of priors.filter((r) => r.epoch === 2)) {
      let worst = 0;
      p.m.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - expected[i]!))));
      assert.ok(worst < 1e-5, `epoch-2 prior = teacher class means of epoch 1 (max diff ${worst})`);
    }
    // The student checkpoint is an ordinary model checkpoint (ikl-eval reads it) of the student's architecture.
    const ck = await readCheckpoint(join(studentDir, RUN_FILES.last));
    assert.equal(ck.meta.arch, 'small-cnn');
    ck.model.dispose();
  } finally {
    for (const d of [teacherDir, studentDir]) rmSync(d, { recursive: true, force: true });
  }
});

/** Per class c: mean over the training images of class c of softmax(z_t/T2), from the teacher checkpoint. */
async function expectedPrior(config: ReturnType<typeof studentConfig>, teacherCk: string): Promise<Float64Array> {
  const d = config.data;
  const { train: full } = await loadDataset(d.dataset, { synthetic: d.synthetic });
  const { train: trainSet } = splitValidation(full, d.valSize, config.run.seed);
  const ck = await readCheckpoint(teacherCk);
  const C = config.model.numClasses;
  const sums = new Float64Array(C * C);
  const n = new Float64Array(C);
  for (const b of batches(trainSet, { batchSize: 16, shuffle: false, augment: false })) {
    const p = tf.tidy(() => tf.softmax(tf.div(forward(ck.model, b.x, { training: false }), config.distill.temperature2)).arraySync() as number[][]);
    const y = b.y.arraySync() as number[];
    y.forEach((c, i) => {
      n[c]!++;
      for (let j = 0; j < C; j++) sums[c * C + j]! += p[i]![j]!;
    });
    tf.dispose([b.x, b.y]);
  }
  ck.model.dispose();
  return sums.map((s, i) => s / n[Math.floor(i / C)]!);
}

test('KD resume: 2 epochs straight equal a mid-epoch stop + resume (prior included); another teacher is refused', heavy, async () => {
  const teacherDir = tmp();
  const otherTeacher = tmp();
  const teacherCopy = join(tmp(), 'teacher');
  const straight = tmp();
  const mid = tmp();
  try {
    await train(teacherConfig(), { runDir: teacherDir });
    await train(resolveConfig({ file: 'configs/kd/quick-teacher.yaml', sets: [...TINY, 'run.seed=5'] }), { runDir: otherTeacher });
    // A plain copy of the teacher checkpoint, so that its contents can be swapped under the same path below.
    cpSync(join(teacherDir, RUN_FILES.last), teacherCopy, { recursive: true, dereference: true });
    const config = resolveConfig({ file: 'configs/kd/quick.yaml', sets: [...TINY, `teacher.checkpoint=${teacherCopy}`] });
    await noLeak(async () => {
      const a = await train(config, { runDir: straight });
      const signal = { stopRequested: false };
      // Stop after the first batch of epoch 2: the checkpoint holds a finalised prior and partial sums.
      const c1 = await train(config, { runDir: mid, signal, onStep: (i) => (signal.stopRequested = i.epoch === 2 && i.batch === 0) });
      assert.equal(c1.stopped, 'signal');
      assert.equal(c1.steps, 4);
      const c2 = await train(config, { runDir: mid, resume: true });
      assert.equal(c2.steps, 6);
      assert.ok(maxDiff(await lastWeights(straight), await lastWeights(mid)) <= 1e-6, 'mid-epoch resume gives the same student');
      assert.ok(Math.abs((c2.metrics[1]!.lossTotal as number) - (a.metrics[1]!.lossTotal as number)) < 1e-6, 'same epoch-2 loss');
    });
    const prior = async (dir: string): Promise<number[]> => {
      const ck = await readCheckpoint(join(dir, RUN_FILES.last));
      ck.model.dispose();
      return (ck.state as { kdPrior: { matrix: number[] } }).kdPrior.matrix;
    };
    const pa = await prior(straight);
    const pb = await prior(mid);
    assert.ok(pa.some((v) => Math.abs(v - 0.1) > 1e-4) && pa.every((v, i) => Math.abs(v - pb[i]!) < 1e-7), 'same, non-uniform class prior');
    // Other teacher weights under the same path (so the same config hash): the resume is refused by name.
    rmSync(teacherCopy, { recursive: true });
    cpSync(join(otherTeacher, RUN_FILES.last), teacherCopy, { recursive: true, dereference: true });
    await assert.rejects(train(config, { runDir: mid, resume: true }), /distilled from another teacher/);
  } finally {
    for (const d of [teacherDir, otherTeacher, join(teacherCopy, '..'), straight, mid]) rmSync(d, { recursive: true, force: true });
  }
});

test('a teacher of another architecture than teacher.arch is refused with the checkpoint named', heavy, async () => {
  const teacherDir = tmp();
  try {
    await train(teacherConfig(), { runDir: teacherDir });
    const ck = join(teacherDir, RUN_FILES.last);
    await assert.rejects(
      train(resolveConfig({ file: 'configs/kd/quick.yaml', sets: [...TINY, `teacher.checkpoint=${ck}`, 'teacher.arch=resnet8x4'] }), {
        runDir: join(teacherDir, 's1'),
      }),
      (e: Error) => e.message.includes(ck) && /is a vgg8, the config's teacher\.arch says resnet8x4/.test(e.message),
    );
  } finally {
    rmSync(teacherDir, { recursive: true, force: true });
  }
});

test('the KD objectives: the student on x (or on x′ with distill.adversarial), the teacher logits as given, CE and distillation split', () => {
  const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 1 });
  const x = randomImages(6, 2);
  const xAdv = randomImages(6, 3);
  const y = tf.tensor1d([0, 1, 2, 3, 4, 5], 'int32');
  const teacher = tf.randomNormal([6, 10], 0, 3, 'float32', 4) as tf.Tensor2D;
  const distill = resolveConfig({}).distill;
  const fwd = (v: tf.Tensor4D) => forward(model, v, { training: false });
  for (const [type, adversarial] of [
    ['ikl-kd', false],
    ['kd', false],
    ['dkd', true],
    ['ikl-kd', true],
  ] as const) {
    const opts = { ...resolveConfig({}).objective, type };
    const kd = { logitsTeacher: teacher, warmup: 0.5, distill: { ...distill, adversarial } };
    const [total, natural, robust, expected, ce] = tf.tidy(() => {
      const q = objective(fwd, x, y, xAdv, undefined, opts, kd);
      const zs = fwd(adversarial ? xAdv : x);
      const want =
        type === 'ikl-kd'
          ? iklKdLoss(zs, teacher, y, { alpha: 1, beta: 8, temperature: 4, temperature2: 100, warmup: 0.5 })
          : type === 'kd'
            ? kdLoss(zs, teacher, y, { temperature: 4, ceWeight: 0.1, kdWeight: 0.9 })
            : dkdLoss(zs, teacher, y, { alpha: 1, beta: 8, temperature: 4, warmup: 0.5 });
      const ceW = type === 'kd' ? 0.1 : 1;
      return [q.total, q.natural!, q.robust!, want, tf.mul(ceW, crossEntropy(zs, y))].map((t) => t.dataSync()[0]!);
    });
    assert.ok(Math.abs(total! - expected!) < 1e-5, `${type} adversarial=${adversarial}: ${total} vs ${expected}`);
    assert.ok(Math.abs(natural! - ce!) < 1e-5 && Math.abs(natural! + robust! - total!) < 1e-5, `${type}: parts`);
  }
  tf.dispose([x, xAdv, y, teacher]);
  model.dispose();
});

test('adversarially robust distillation runs at tiny size: the student trains on x′ only', heavy, async () => {
  const teacherDir = tmp();
  const studentDir = tmp();
  try {
    await train(teacherConfig(), { runDir: teacherDir });
    const res = await train(studentConfig(teacherDir, ['distill.adversarial=true', 'attack.steps=2', 'distill.ceWeight=0']), { runDir: studentDir });
    const m = res.metrics[1]!;
    assert.equal(m.trainCleanAcc, null, 'no clean student pass');
    assert.equal(typeof m.trainAdvAcc, 'number');
    assert.ok(Number.isFinite(m.lossTotal) && m.lossNatural === 0, `CE weight 0: ${JSON.stringify(m)}`);
  } finally {
    for (const d of [teacherDir, studentDir]) rmSync(d, { recursive: true, force: true });
  }
});
