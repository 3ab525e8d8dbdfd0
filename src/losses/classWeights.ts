/**
 * Class-wise global weights of IKL: a C×C matrix P whose row y is s̄_y, the mean of softmax(z/T) over the
 * training examples of class y in the previous epoch (clean logits of the loss forward pass, no gradient).
 * Epoch 1 uses P = 1/C everywhere. At each epoch end, P ← m·P_new + (1 − m)·P (m = 1 in the paper: no EMA).
 * Knowledge distillation (IKL-KD with GI) uses the same object over the TEACHER's logits at temperature T2: DKL's
 * engine/trainer.py sums onehot(y)ᵀ softmax(z_t/T2) over an epoch and divides each row by its sum (kd.ts).
 *
 * All state lives in non-trainable tf variables, so `accumulate` never reads back to the host; only
 * `matrix()` and `toJSON()` do. The partial accumulator is serialised too, so a run resumed mid-epoch
 * finalises exactly as the uninterrupted one.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { checkLabels, checkLogits, checkNumber } from './validate.js';

export interface ClassWeightsOptions {
  /** Softmax temperature T of the accumulated predictions (default 4, the published runs). */
  temperature?: number;
  /** m in [0, 1]: weight of the new per-class means at finalize (default 1 = replace). */
  momentum?: number;
}

/** Serialised form (plain JSON; float32 values are exact as JS numbers). */
export interface ClassWeightsJSON {
  kind: 'ikl-at/class-weights';
  version: 1;
  numClasses: number;
  temperature: number;
  momentum: number;
  /** P, row-major C×C. */
  matrix: number[];
  /** Sums of softmax(z/T) per label since the last finalize, row-major C×C. */
  sums: number[];
  /** Examples accumulated per label since the last finalize. */
  counts: number[];
}

export class ClassWeights {
  readonly numClasses: number;
  readonly temperature: number;
  readonly momentum: number;
  private readonly p: tf.Variable<tf.Rank.R2>;
  private readonly sums: tf.Variable<tf.Rank.R2>;
  private readonly counts: tf.Variable<tf.Rank.R1>;
  private disposed = false;

  constructor(numClasses: number, opts: ClassWeightsOptions = {}) {
    if (!Number.isInteger(numClasses) || numClasses < 1) {
      throw new InputError(`ClassWeights: numClasses must be a positive integer, got ${String(numClasses)}`);
    }
    this.numClasses = numClasses;
    this.temperature = checkNumber('ClassWeights', 'temperature', opts.temperature ?? 4, { minExclusive: 0 });
    this.momentum = checkNumber('ClassWeights', 'momentum', opts.momentum ?? 1, { min: 0, max: 1 });
    const c = numClasses;
    this.p = tf.tidy(() => tf.variable(tf.fill([c, c], 1 / c), false) as tf.Variable<tf.Rank.R2>);
    this.sums = tf.tidy(() => tf.variable(tf.zeros([c, c]), false) as tf.Variable<tf.Rank.R2>);
    this.counts = tf.tidy(() => tf.variable(tf.zeros([c], 'int32'), false) as tf.Variable<tf.Rank.R1>);
  }

  /** Adds softmax(logitsNat/T) of each example to its label's running sum. No gradient, no host read. */
  accumulate(logitsNat: tf.Tensor2D, labels: tf.Tensor1D): void {
    const [sums, counts] = this.increment(logitsNat, labels);
    this.add(sums, counts);
    tf.dispose([sums, counts]);
  }

  /**
   * What `accumulate` would add for this batch: [Σ over the batch of onehot(y_b)ᵀ softmax(z_b/T) (C×C), examples
   * per label (C, float32)]. Data parallelism sums these over the tasks in the step's collective and `add`s the
   * sum on every task, so all tasks hold the same accumulator at every step. Caller disposes.
   */
  increment(logitsNat: tf.Tensor2D, labels: tf.Tensor1D): [tf.Tensor2D, tf.Tensor1D] {
    this.assertLive('increment');
    checkLogits('ClassWeights.accumulate', 'logitsNat', logitsNat, this.numClasses);
    if (logitsNat.shape[1] !== this.numClasses) {
      throw new InputError(`ClassWeights.accumulate: logitsNat must have ${this.numClasses} columns, got ${logitsNat.shape[1]}`);
    }
    checkLabels('ClassWeights.accumulate', 'labels', labels, logitsNat);
    return tf.tidy(() => {
      const probs = tf.softmax(tf.div(logitsNat, this.temperature));
      const oneHot = tf.oneHot(labels, this.numClasses).toFloat(); // B×C
      // Row y collects the predictions of class-y examples.
      return [tf.matMul(oneHot, probs, true, false), tf.sum(oneHot, 0)] as [tf.Tensor2D, tf.Tensor1D];
    });
  }

  /** Adds an increment (this batch's, or the sum of the tasks' increments) to the running sums. */
  add(sums: tf.Tensor, counts: tf.Tensor): void {
    this.assertLive('add');
    tf.tidy(() => {
      this.sums.assign(tf.add(this.sums, sums) as tf.Tensor2D);
      this.counts.assign(tf.add(this.counts, tf.cast(tf.round(counts), 'int32')) as tf.Tensor1D);
    });
  }

  /**
   * Epoch end: P_new row y = accumulated row y normalised to sum 1 (the per-class mean); a class that saw
   * no example keeps its row. P ← m·P_new + (1 − m)·P. Resets the accumulator.
   */
  finalize(): void {
    this.assertLive('finalize');
    tf.tidy(() => {
      const c = this.numClasses;
      const seen = tf.reshape(tf.cast(tf.greater(this.counts, 0), 'float32'), [c, 1]);
      // Dividing by the row sum rather than the count gives rows summing to 1 up to rounding, as the reference does.
      const rowSum = tf.sum(this.sums, 1, true);
      const means = tf.divNoNan(this.sums, rowSum);
      const pNew = tf.add(tf.mul(seen, means), tf.mul(tf.sub(1, seen), this.p));
      const m = this.momentum;
      this.p.assign((m === 1 ? pNew : tf.add(tf.mul(m, pNew), tf.mul(1 - m, this.p))) as tf.Tensor2D);
      this.sums.assign(tf.zerosLike(this.sums));
      this.counts.assign(tf.zerosLike(this.counts));
    });
  }

  /** Rows of P for a batch of labels (B×C), for `iklLoss({ classPrior })`. Caller disposes. */
  gather(labels: tf.Tensor1D): tf.Tensor2D {
    this.assertLive('gather');
    if (labels.rank !== 1 || labels.dtype !== 'int32') {
      throw new InputError(`ClassWeights.gather: labels must be an int32 Tensor1D, got ${labels.dtype} shape [${labels.shape.join(', ')}]`);
    }
    return tf.gather(this.p, labels) as tf.Tensor2D;
  }

  /** A copy of P, row-major C×C. */
  matrix(): Float32Array {
    this.assertLive('matrix');
    return new Float32Array(this.p.dataSync());
  }

  toJSON(): ClassWeightsJSON {
    this.assertLive('toJSON');
    return {
      kind: 'ikl-at/class-weights',
      version: 1,
      numClasses: this.numClasses,
      temperature: this.temperature,
      momentum: this.momentum,
      matrix: Array.from(this.p.dataSync()),
      sums: Array.from(this.sums.dataSync()),
      counts: Array.from(this.counts.dataSync()),
    };
  }

  /**
   * Restores a serialised state (P, partial accumulator, T, m). `source` names the file in error messages,
   * e.g. 'checkpoint.json: classWeights'.
   */
  static fromJSON(obj: unknown, source = 'class weights'): ClassWeights {
    if (typeof obj !== 'object' || obj === null) throw new InputError(`${source}: expected an object, got ${obj === null ? 'null' : typeof obj}`);
    const o = obj as Record<string, unknown>;
    if (o.kind !== 'ikl-at/class-weights') throw new InputError(`${source}: field 'kind' must be 'ikl-at/class-weights', got ${JSON.stringify(o.kind)}`);
    if (o.version !== 1) throw new InputError(`${source}: field 'version' must be 1, got ${JSON.stringify(o.version)}`);
    const c = o.numClasses;
    if (typeof c !== 'number' || !Number.isInteger(c) || c < 1) {
      throw new InputError(`${source}: field 'numClasses' must be a positive integer, got ${JSON.stringify(c)}`);
    }
    const numbers = (field: string, length: number, valid: (x: number) => boolean, what: string): number[] => {
      const v = o[field];
      if (!Array.isArray(v) || v.length !== length || !v.every((x) => typeof x === 'number' && valid(x))) {
        throw new InputError(`${source}: field '${field}' must be an array of ${length} ${what}`);
      }
      return v as number[];
    };
    const matrix = numbers('matrix', c * c, (x) => Number.isFinite(x) && x >= 0, 'finite non-negative numbers');
    const sums = numbers('sums', c * c, (x) => Number.isFinite(x) && x >= 0, 'finite non-negative numbers');
    const counts = numbers('counts', c, (x) => Number.isInteger(x) && x >= 0, 'non-negative integers');
    let weights: ClassWeights;
    try {
      weights = new ClassWeights(c, { temperature: o.temperature as number, momentum: o.momentum as number });
    } catch (e) {
      if (e instanceof InputError) throw new InputError(`${source}: ${e.message.replace(/^ClassWeights: option /, 'field ')}`);
      throw e;
    }
    tf.tidy(() => {
      weights.p.assign(tf.tensor2d(matrix, [c, c], 'float32'));
      weights.sums.assign(tf.tensor2d(sums, [c, c], 'float32'));
      weights.counts.assign(tf.tensor1d(counts, 'int32'));
    });
    return weights;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.p.dispose();
    this.sums.dispose();
    this.counts.dispose();
  }

  private assertLive(method: string): void {
    if (this.disposed) throw new Error(`ClassWeights.${method}: called after dispose()`);
  }
}
