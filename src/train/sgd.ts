/**
 * SGD with momentum, Nesterov and weight decay, with PyTorch's semantics (the reference optimiser):
 *   g ← g + wd·θ;  buf ← m·buf + g (buf = g at the first step);  θ ← θ − lr·buf  (Nesterov: θ ← θ − lr·(g + m·buf)).
 * Weight decay applies to every parameter given (the IKL-AT reference decays BN scales and biases too), unless
 * `decay` names the ones it applies to (DM-Improves-AT: every parameter but the BN ones, two PyTorch parameter
 * groups). The momentum may change from step to step (a OneCycle schedule): PyTorch reads the group's momentum at
 * each step, for the buffer update and the Nesterov look-ahead alike.
 * Parameters are an ordered list; the momentum buffers are exported by position so that a freshly built model
 * (whose tfjs variable names carry different global suffixes) restores them.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';

export interface SgdOptions {
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
  /** Per parameter (same order): whether weightDecay applies to it. Omitted: to all. */
  decay?: boolean[];
}

const STATE_PREFIX = 'sgd/momentum/';

export class Sgd {
  readonly params: tf.Variable[];
  readonly options: SgdOptions;
  /** Momentum buffers, null until the first step (PyTorch initialises buf = g, not 0). */
  private buffers: (tf.Variable | null)[];

  constructor(params: tf.Variable[], options: SgdOptions) {
    if (options.momentum < 0 || options.weightDecay < 0) throw new InputError('optimizer: momentum and weightDecay must be ≥ 0');
    if (options.nesterov && options.momentum <= 0) throw new InputError('optimizer.nesterov: needs momentum > 0');
    if (options.decay && options.decay.length !== params.length) throw new Error(`Sgd: ${options.decay.length} decay flags for ${params.length} parameters`);
    this.params = params;
    this.options = options;
    this.buffers = params.map(() => null);
  }

  /**
   * One update. grads[i] is the gradient of params[i] (a missing gradient leaves the parameter and its buffer
   * alone). `momentum`: this step's momentum (a scheduled one); default options.momentum.
   */
  step(grads: (tf.Tensor | undefined)[], lr: number, momentum?: number): void {
    if (grads.length !== this.params.length) throw new Error(`Sgd.step: ${grads.length} gradients for ${this.params.length} parameters`);
    const { nesterov, weightDecay, decay } = this.options;
    const m = momentum ?? this.options.momentum;
    if (!(m >= 0 && m < 1)) throw new InputError(`optimizer: momentum must be in [0, 1), got ${m}`);
    tf.tidy(() => {
      this.params.forEach((theta, i) => {
        const g0 = grads[i];
        if (g0 === undefined) return;
        const wd = decay && !decay[i] ? 0 : weightDecay;
        const g = wd !== 0 ? tf.add(g0, tf.mul(theta, wd)) : g0;
        let direction: tf.Tensor = g;
        if (m !== 0) {
          const old = this.buffers[i];
          const buf = old ? tf.add(tf.mul(old, m), g) : g;
          if (old) old.assign(buf);
          else this.buffers[i] = tf.variable(buf, false);
          direction = nesterov ? tf.add(g, tf.mul(buf, m)) : buf;
        }
        theta.assign(tf.sub(theta, tf.mul(direction, lr)));
      });
    });
  }

  /** Momentum buffers as named tensors (copies; caller disposes). Positions never stepped are absent. */
  getState(): tf.NamedTensorMap {
    const out: tf.NamedTensorMap = {};
    this.buffers.forEach((b, i) => {
      if (b) out[`${STATE_PREFIX}${i}`] = tf.clone(b);
    });
    return out;
  }

  /** Restores buffers from getState() output (the tensors are copied; the caller keeps ownership). */
  setState(state: tf.NamedTensorMap): void {
    this.disposeBuffers();
    for (const [name, t] of Object.entries(state)) {
      if (!name.startsWith(STATE_PREFIX)) continue;
      const i = Number(name.slice(STATE_PREFIX.length));
      const p = this.params[i];
      if (!Number.isInteger(i) || !p) throw new InputError(`checkpoint optimizer state: '${name}' has no parameter (model has ${this.params.length})`);
      if (!tf.util.arraysEqual(p.shape, t.shape)) {
        throw new InputError(`checkpoint optimizer state: '${name}' has shape [${t.shape}], parameter has [${p.shape}]`);
      }
      // A variable shares t's (immutable) data; the caller may dispose t.
      this.buffers[i] = tf.variable(t, false);
    }
  }

  private disposeBuffers(): void {
    this.buffers.forEach((b) => b?.dispose());
    this.buffers = this.params.map(() => null);
  }

  dispose(): void {
    this.disposeBuffers();
  }
}
