/**
 * Data-pipeline benchmark: is feeding images ever the bottleneck?
 *
 *  1. read: a generated CIFAR-10 binary folder (50,000 random training images + 10,000 test) in a temp dir;
 *  2. pipeline: one epoch of shuffle + crop/flip augmentation + one float tensor per batch of 128;
 *  3. consumer: a TRADES-like training step of a small CNN at batch 128 — 7 forward+backward passes
 *     (5 attack steps w.r.t. the input, 2 loss passes w.r.t. the weights) — as images per second;
 *  4. synthetic: generation time of 10,000 synthetic images.
 * Prints the figures and the pipeline/consumer ratio (the pipeline should be ≥ 10x faster).
 *
 * Usage: node dist/bench/data.js [--real <cifar-10-batches-bin dir>] [--real-file <records.bin>] [--steps N]
 * (--real / --real-file time the reader on real CIFAR-10 data kept outside the repository.)
 */
import { randomFillSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { batches, makeSynthetic, readCifar10, readExtraData } from '../src/data/index.js';

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

function writeRandomCifar10(dir: string): void {
  const rb = 3073;
  const files = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin', 'test_batch.bin'];
  for (const f of files) {
    const buf = Buffer.alloc(10_000 * rb);
    randomFillSync(buf);
    for (let r = 0; r < 10_000; r++) buf[r * rb] = buf[r * rb]! % 10;
    writeFileSync(join(dir, f), buf);
  }
}

function smallCnn(): tf.LayersModel {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [32, 32, 3], filters: 16, kernelSize: 3, padding: 'same', useBias: false }));
  m.add(tf.layers.batchNormalization());
  m.add(tf.layers.reLU());
  m.add(tf.layers.conv2d({ filters: 32, kernelSize: 3, strides: 2, padding: 'same', useBias: false }));
  m.add(tf.layers.batchNormalization());
  m.add(tf.layers.reLU());
  m.add(tf.layers.conv2d({ filters: 64, kernelSize: 3, strides: 2, padding: 'same', useBias: false }));
  m.add(tf.layers.batchNormalization());
  m.add(tf.layers.reLU());
  m.add(tf.layers.globalAveragePooling2d({}));
  m.add(tf.layers.dense({ units: 10 }));
  return m;
}

/** One TRADES-like step: 5 input-gradient attack passes, then 2 weight-gradient passes and an SGD update. */
function tradesLikeStep(model: tf.LayersModel, opt: tf.Optimizer, x: tf.Tensor4D, y: tf.Tensor1D): void {
  tf.tidy(() => {
    const onehot = tf.oneHot(y, 10);
    const ce = (input: tf.Tensor4D, training: boolean) => tf.losses.softmaxCrossEntropy(onehot, model.apply(input, { training }) as tf.Tensor2D) as tf.Scalar;
    let xAdv: tf.Tensor4D = x.add(tf.randomUniform(x.shape, -0.001, 0.001));
    const gradX = tf.grad((inp: tf.Tensor) => ce(inp as tf.Tensor4D, false));
    for (let s = 0; s < 5; s++) {
      const g = gradX(xAdv);
      xAdv = tf.clipByValue(tf.minimum(tf.maximum(xAdv.add(g.sign().mul(2 / 255)), x.sub(8 / 255)), x.add(8 / 255)), 0, 1) as tf.Tensor4D;
    }
    const { grads } = tf.variableGrads(() => ce(x, true).add(ce(xAdv, true)) as tf.Scalar);
    opt.applyGradients(grads);
  });
}

async function main(): Promise<void> {
  const info = await initBackend();
  const steps = Number(arg('--steps') ?? 5);
  console.log(`backend ${info.name} (${info.devices.join(', ')}), tfjs ${tf.version.tfjs}`);

  // 1. reader
  const dir = mkdtempSync(join(tmpdir(), 'ikl-bench-data-'));
  try {
    writeRandomCifar10(dir);
    let t = performance.now();
    const { train } = await readCifar10(dir);
    const readS = (performance.now() - t) / 1000;
    console.log(`read CIFAR-10 format (60,000 images, 184 MB): ${readS.toFixed(2)} s (${Math.round(60_000 / readS).toLocaleString('en')} images/s)`);

    // 2. pipeline: one full epoch, shuffle + augmentation + tensors, each batch disposed
    const pipe = (augment: boolean) => {
      const t0 = performance.now();
      let n = 0;
      for (const b of batches(train, { batchSize: 128, shuffle: true, augment, seed: 1, epoch: 0 })) {
        n += b.y.shape[0];
        tf.dispose([b.x, b.y]);
      }
      return n / ((performance.now() - t0) / 1000);
    };
    pipe(true); // warm-up (JIT)
    const pipeAug = pipe(true);
    const pipePlain = pipe(false);
    console.log(`pipeline, shuffle + crop/flip + tensors, batch 128: ${Math.round(pipeAug).toLocaleString('en')} images/s`);
    console.log(`pipeline, shuffle + tensors (no augmentation):     ${Math.round(pipePlain).toLocaleString('en')} images/s`);

    // 3. consumer
    const model = smallCnn();
    const opt = tf.train.momentum(0.01, 0.9);
    const it = batches(train, { batchSize: 128, shuffle: true, augment: true, seed: 2, epoch: 0 });
    const next = () => it.next().value as { x: tf.Tensor4D; y: tf.Tensor1D };
    {
      const b = next();
      tradesLikeStep(model, opt, b.x, b.y); // warm-up: kernel selection, graph setup
      tf.dispose([b.x, b.y]);
    }
    const held = next();
    await held.x.data();
    t = performance.now();
    for (let s = 0; s < steps; s++) tradesLikeStep(model, opt, held.x, held.y);
    await model.getWeights()[0]!.data();
    const stepS = (performance.now() - t) / 1000 / steps;
    tf.dispose([held.x, held.y]);
    const consume = 128 / stepS;
    console.log(
      `consumer: small CNN, TRADES-like step (7 fwd+bwd passes) at batch 128: ${(stepS * 1000).toFixed(0)} ms/step = ${Math.round(consume).toLocaleString('en')} images/s`,
    );
    console.log(`ratio pipeline/consumer: ${(pipeAug / consume).toFixed(1)}x (target ≥ 10x)`);
    model.dispose();
    opt.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // 4. synthetic
  makeSynthetic({ nTrain: 500, nTest: 0, seed: 0 }); // warm-up
  const t = performance.now();
  makeSynthetic({ nTrain: 10_000, nTest: 0, seed: 0 });
  console.log(`synthetic: 10,000 images in ${((performance.now() - t) / 1000).toFixed(2)} s (target < 2 s)`);

  const real = arg('--real');
  if (real) {
    const t1 = performance.now();
    const { train: r, test } = await readCifar10(real);
    console.log(`real CIFAR-10 folder ${real}: ${r.n + test.n} images in ${((performance.now() - t1) / 1000).toFixed(2)} s`);
  }
  const realFile = arg('--real-file');
  if (realFile) {
    const t1 = performance.now();
    const r = await readExtraData(realFile, 10);
    const s = (performance.now() - t1) / 1000;
    console.log(`real CIFAR-10 record file ${realFile}: ${r.n} images in ${s.toFixed(3)} s (${Math.round(r.n / s).toLocaleString('en')} images/s)`);
  }
  console.log(`tensors alive at exit: ${tf.memory().numTensors}`);
}

await main();
