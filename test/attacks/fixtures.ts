/** Models and data generated inside the tests: a linear classifier (closed-form worst case) and a tiny trained MLP. */
import * as tf from '@tensorflow/tfjs';
import type { ModelFn, Norm } from '../../src/attacks/types.js';
import { distance } from '../../src/attacks/fab-projection.js';
import { rng } from '../helpers.js';

export interface Linear {
  model: ModelFn;
  /** C×d weights and C biases as plain numbers, for closed forms computed in JS. */
  W: number[][];
  b: number[];
  dispose(): void;
}

/** f(x) = W·flatten(x) + b. */
export function linearModel(W: number[][], b: number[]): Linear {
  const wT = tf.tensor2d(W).transpose();
  const bias = tf.tensor1d(b);
  const model: ModelFn = (x) => tf.tidy(() => tf.add(tf.matMul(x.reshape([x.shape[0], -1]), wT), bias) as tf.Tensor2D);
  return { model, W, b, dispose: () => tf.dispose([wT, bias]) };
}

/** B inputs of shape h×w×c with values uniform in [lo, hi] (away from the box edges when lo > eps, hi < 1 − eps). */
export function uniformInputs(seed: number, b: number, shape: [number, number, number], lo = 0, hi = 1): { data: Float32Array; x: tf.Tensor4D } {
  const r = rng(seed);
  const n = b * shape[0] * shape[1] * shape[2];
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = lo + (hi - lo) * r();
  return { data, x: tf.tensor4d(data, [b, ...shape]) };
}

export function randomMatrix(seed: number, rows: number, cols: number, scale: number): number[][] {
  const r = rng(seed);
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => scale * (2 * r() - 1)));
}

/** Per-example logit margin z_y − max_{k≠y} z_k from plain arrays. */
export function margins(logits: Float32Array | number[], y: ArrayLike<number>, c: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < y.length; i++) {
    const row = Array.from(logits.slice(i * c, (i + 1) * c));
    const zy = row[y[i]!]!;
    out.push(zy - Math.max(...row.filter((_, k) => k !== y[i])));
  }
  return out;
}

/** Fraction of examples the model classifies correctly. */
export async function accuracy(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D): Promise<number> {
  const correct = tf.tidy(() => tf.mean(tf.cast(tf.equal(tf.argMax(model(x), 1), y), 'float32')));
  const v = (await correct.data())[0]!;
  correct.dispose();
  return v;
}

export interface Task {
  model: ModelFn;
  x: tf.Tensor4D;
  y: tf.Tensor1D;
  numClasses: number;
  dispose(): void;
}

/**
 * A tiny MLP trained on a generated task: class k has a random mean image in [0.25, 0.75]; samples add
 * N(0, noise²) and are clipped to [0, 1]. Trained with Adam on `train` points, returned with `test` fresh points.
 * A few seconds on the native backend; accurate but not robust, so attacks have something to break.
 */
export function trainedTask(opts: {
  seed: number;
  numClasses?: number;
  shape?: [number, number, number];
  noise?: number;
  hidden?: number;
  steps?: number;
  train?: number;
  test?: number;
}): Task {
  const c = opts.numClasses ?? 10;
  const shape = opts.shape ?? [8, 8, 3];
  const d = shape[0] * shape[1] * shape[2];
  const noise = opts.noise ?? 0.25;
  const hidden = opts.hidden ?? 32;
  const r = rng(opts.seed);
  const gauss = (): number => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const means = Array.from({ length: c }, () => Array.from({ length: d }, () => 0.25 + 0.5 * r()));
  const sample = (n: number): { x: tf.Tensor4D; y: tf.Tensor1D } => {
    const data = new Float32Array(n * d);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const k = i % c;
      labels[i] = k;
      for (let j = 0; j < d; j++) data[i * d + j] = Math.min(1, Math.max(0, means[k]![j]! + noise * gauss()));
    }
    return { x: tf.tensor4d(data, [n, ...shape]), y: tf.tensor1d(labels, 'int32') };
  };
  const train = sample(opts.train ?? 512);
  const test = sample(opts.test ?? 64);
  const w1 = tf.variable(tf.randomNormal([d, hidden], 0, Math.sqrt(2 / d), 'float32', opts.seed));
  const b1 = tf.variable(tf.zeros([hidden]));
  const w2 = tf.variable(tf.randomNormal([hidden, c], 0, Math.sqrt(1 / hidden), 'float32', opts.seed + 1));
  const b2 = tf.variable(tf.zeros([c]));
  const model: ModelFn = (x) => tf.tidy(() => tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x.reshape([x.shape[0], d]), w1), b1)), w2), b2) as tf.Tensor2D);
  const optimizer = tf.train.adam(0.01);
  const yTrain = tf.oneHot(train.y, c);
  for (let s = 0; s < (opts.steps ?? 200); s++) {
    const cost = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(yTrain, model(train.x)) as tf.Scalar, true, [w1, b1, w2, b2]);
    cost?.dispose();
  }
  optimizer.dispose();
  tf.dispose([yTrain, train.x, train.y]);
  return {
    model,
    x: test.x,
    y: test.y,
    numClasses: c,
    dispose: () => tf.dispose([w1, b1, w2, b2, test.x, test.y]),
  };
}

/** Max per-example perturbation in the norm, min and max value, from plain arrays (independent of src/attacks). */
export function perturbationStats(x: Float32Array, xAdv: Float32Array, b: number, norm: 'linf' | 'l2'): { maxPert: number; min: number; max: number } {
  const d = x.length / b;
  let maxPert = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < b; i++) {
    let acc = 0;
    for (let j = 0; j < d; j++) {
      const v = xAdv[i * d + j]!;
      const diff = Math.abs(v - x[i * d + j]!);
      acc = norm === 'linf' ? Math.max(acc, diff) : acc + diff * diff;
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    maxPert = Math.max(maxPert, norm === 'linf' ? acc : Math.sqrt(acc));
  }
  return { maxPert, min, max };
}

/**
 * Closed form for a linear model with the box not binding: per example, min over k ≠ y and over the eps-ball of
 * z_y − z_k = min_k [m_k(x) − eps·‖w_y − w_k‖_dual] (dual of L-inf is L1, of L2 is L2); negative iff the point
 * can be fooled. x holds B rows of D features.
 */
export function worstMargins(W: number[][], b: number[], x: Float32Array, y: number[], eps: number, norm: 'linf' | 'l2'): number[] {
  const D = W[0]!.length;
  return y.map((yi, i) => {
    let worst = Infinity;
    for (let k = 0; k < W.length; k++) {
      if (k === yi) continue;
      let m = b[yi]! - b[k]!;
      let dual = 0;
      for (let j = 0; j < D; j++) {
        const dw = W[yi]![j]! - W[k]![j]!;
        m += dw * x[i * D + j]!;
        dual += norm === 'linf' ? Math.abs(dw) : dw * dw;
      }
      worst = Math.min(worst, m - eps * (norm === 'linf' ? dual : Math.sqrt(dual)));
    }
    return worst;
  });
}

/** A tiny conv net with a BN layer (its running statistics let tests check that attacks leave model state alone). */
export function smallConvNet(shape: readonly [number, number, number], activation: 'relu' | 'tanh'): { net: tf.Sequential; model: ModelFn } {
  const net = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [...shape], filters: 4, kernelSize: 3, activation, kernelInitializer: tf.initializers.glorotNormal({ seed: 1 }) }),
      tf.layers.batchNormalization(),
      tf.layers.flatten(),
      tf.layers.dense({ units: 5, kernelInitializer: tf.initializers.glorotNormal({ seed: 2 }) }),
    ],
  });
  return { net, model: (x) => net.apply(x, { training: false }) as tf.Tensor2D };
}

/**
 * A 2-class linear model whose boundary passes through the all-0.5 image, n inputs 0.5 ± 0.05 (well inside the box),
 * and the closed-form minimal distance of each input to the boundary: L-inf |margin| / ‖w_y − w_o‖₁, L2
 * |margin| / ‖w_y − w_o‖₂. `calls` records the batch size of every model evaluation (query accounting).
 */
export function boundaryLinearFixture(n: number, seed: number, shape: readonly [number, number, number]) {
  const D = shape[0] * shape[1] * shape[2];
  const r = rng(seed);
  const w = Float32Array.from({ length: D * 2 }, () => r() - 0.5);
  const wdiff = Array.from({ length: D }, (_, i) => w[2 * i]! - w[2 * i + 1]!);
  const b0 = -wdiff.reduce((acc, v) => acc + 0.5 * v, 0);
  const W = tf.tensor2d(w, [D, 2]);
  const bias = tf.tensor1d([b0, 0]);
  const calls: number[] = [];
  const model: ModelFn = (x) => {
    calls.push(x.shape[0]);
    return tf.tidy(() => tf.add(tf.matMul(tf.reshape(x, [x.shape[0], D]), W), bias) as tf.Tensor2D);
  };
  const xs = Float32Array.from({ length: n * D }, () => 0.5 + 0.1 * (r() - 0.5));
  const labels: number[] = [];
  const closedForm: Record<Norm, number[]> = { linf: [], l2: [], l1: [] };
  const l1w = wdiff.reduce((a, v) => a + Math.abs(v), 0);
  const l2w = Math.sqrt(wdiff.reduce((a, v) => a + v * v, 0));
  const linfw = wdiff.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
  for (let i = 0; i < n; i++) {
    let m = b0;
    for (let j = 0; j < D; j++) m += wdiff[j]! * xs[i * D + j]!;
    labels.push(m > 0 ? 0 : 1);
    closedForm.linf.push(Math.abs(m) / l1w);
    closedForm.l2.push(Math.abs(m) / l2w);
    // L1 (dual L-inf), ignoring the box: the move puts everything on the coordinate of largest |w|.
    closedForm.l1.push(Math.abs(m) / linfw);
  }
  const x = tf.tensor4d(xs, [n, ...shape]);
  const y = tf.tensor1d(labels, 'int32');
  return { model, x, y, closedForm, calls, labels, dispose: () => tf.dispose([W, bias, x, y]) };
}

/** Per-example distance between two batches in the given norm. */
export function perExampleDistances(a: tf.Tensor4D, b: tf.Tensor4D, norm: Norm = 'linf'): number[] {
  const av = a.dataSync();
  const bv = b.dataSync();
  const D = av.length / a.shape[0];
  return Array.from({ length: a.shape[0] }, (_, i) => distance(av.subarray(i * D, (i + 1) * D), bv.subarray(i * D, (i + 1) * D), norm));
}
