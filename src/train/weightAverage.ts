/**
 * Weight averaging (the published IKL-AT checkpoints are these averages): after each epoch
 * θ_WA ← τ·θ_WA + (1 − τ)·θ_e, with θ_WA = θ_e at the first averaged epoch, over ALL weights including the
 * BN running statistics. Optionally the same update per optimiser step (an EMA), with a decay given per update
 * (ema.ts: DM-Improves-AT's burn-in and dynamic decay), and optionally with the positions of `copy` (the BN
 * running statistics) taken from the live weights instead of averaged (DM-Improves-AT averages only the
 * parameters and copies the buffers from the model, update_bn).
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';

const STATE_PREFIX = 'wa/';

export class WeightAverage {
  /** τ, the weight of the old average (reference: 0.9). */
  readonly tau: number;
  private avg: tf.Variable[] | null = null;
  /** Number of updates folded in so far. */
  count = 0;

  /** Positions (in the weights' order) taken from the live weights at every update rather than averaged. */
  readonly copy?: boolean[];

  constructor(tau: number, copy?: boolean[]) {
    if (!(tau >= 0 && tau < 1)) throw new InputError(`weightAverage.tau: expected a number in [0, 1), got ${tau}`);
    this.tau = tau;
    this.copy = copy;
  }

  /**
   * Folds the current weights in (all of them, in a fixed order: model.weights of the same architecture), with
   * θ_WA ← decay·θ_WA + (1 − decay)·θ (default decay τ).
   */
  update(weights: tf.Tensor[], decay?: number): void {
    this.adopt(this.next(weights, decay));
  }

  /**
   * The average `update(weights)` would make, as new tensors, without changing this one: the epoch end evaluates
   * it first and adopts it only once the evaluation finished (a stop during the evaluation changes nothing).
   */
  next(weights: tf.Tensor[], decay?: number): tf.Tensor[] {
    if (this.copy && this.copy.length !== weights.length) throw new Error(`WeightAverage: ${weights.length} weights, ${this.copy.length} copy flags`);
    if (!this.avg) return weights.map((w) => tf.clone(w));
    if (this.avg.length !== weights.length) throw new Error(`WeightAverage.update: ${weights.length} weights, average has ${this.avg.length}`);
    const tau = decay ?? this.tau;
    if (!(tau >= 0 && tau < 1)) throw new Error(`WeightAverage.update: decay must be in [0, 1), got ${tau}`);
    return tf.tidy(() => this.avg!.map((a, i) => (this.copy?.[i] || tau === 0 ? tf.clone(weights[i]!) : tf.add(tf.mul(a, tau), tf.mul(weights[i]!, 1 - tau)))));
  }

  /** Makes `next` (from next(), owned by this object from now on) the average. */
  adopt(next: tf.Tensor[]): void {
    if (!this.avg) {
      this.avg = next.map((w) => tf.variable(w, false));
      tf.dispose(next);
      this.count = 1;
      return;
    }
    this.avg.forEach((a, i) => a.assign(next[i]!));
    tf.dispose(next);
    this.count += 1;
  }

  get initialized(): boolean {
    return this.avg !== null;
  }

  /** The averaged weights (owned by this object; copy them, e.g. with model.setWeights, before disposing). */
  weights(): tf.Tensor[] {
    if (!this.avg) throw new Error('WeightAverage.weights: no update yet');
    return this.avg;
  }

  getState(): tf.NamedTensorMap {
    const out: tf.NamedTensorMap = {};
    this.avg?.forEach((a, i) => (out[`${STATE_PREFIX}${i}`] = tf.clone(a)));
    return out;
  }

  setState(state: tf.NamedTensorMap, count: number): void {
    this.dispose();
    const names = Object.keys(state).filter((n) => n.startsWith(STATE_PREFIX));
    if (names.length === 0) return;
    const list: tf.Variable[] = new Array(names.length);
    for (const n of names) {
      const i = Number(n.slice(STATE_PREFIX.length));
      if (!Number.isInteger(i) || i < 0 || i >= names.length) throw new InputError(`checkpoint weight average: unexpected tensor '${n}'`);
      list[i] = tf.variable(state[n]!, false);
    }
    this.avg = list;
    this.count = count;
  }

  dispose(): void {
    this.avg?.forEach((a) => a.dispose());
    this.avg = null;
    this.count = 0;
  }
}
