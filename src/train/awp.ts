/**
 * Adversarial weight perturbation (AWP, Wu et al. 2020), part of every published IKL-AT run:
 *   1. copy the weights to a proxy model (a second instance of the same architecture, so its BN running
 *      statistics never touch the real model's);
 *   2. one plain SGD step on the proxy ASCENDING the training objective (train mode);
 *   3. per conv/dense kernel (rank ≥ 2): v = ‖W‖ / (‖W_proxy − W‖ + 1e-20) · (W_proxy − W);
 *   4. perturb W += γ·v; the caller does forward/backward/optimizer step on the perturbed model;
 *   5. restore W −= γ·v.
 * Only kernels move, so the proxy step only needs their gradients: biases and BN parameters of the proxy
 * would change too in the reference, but never enter v.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { perturbableKernels } from '../models/index.js';
import type { TrainForward } from './objective.js';

export interface AwpOptions {
  /** γ, the relative size of the perturbation (reference: 0.005). */
  gamma: number;
  /**
   * Learning rate of the proxy's ascent step. The references (train_dkl_cifar10.py, TRADES-AWP) build the proxy
   * optimiser with lr=args.lr, the outer optimiser's base rate (0.2 in the published run), which no schedule
   * touches; the trainer passes optimizer.lr. v is rescaled to ‖W‖, so the rate cancels up to rounding and the
   * 1e-20 guard.
   */
  proxyLr: number;
}

/** The rank ≥ 2 trainable kernels of a model (conv and dense weights; never BN, never biases), in model order. */
export function kernelVariables(model: tf.LayersModel): tf.Variable[] {
  return perturbableKernels(model).map((w) => w.variable.read() as tf.Variable);
}

/** v = ‖W‖ / (‖W_proxy − W‖ + 1e-20) · (W_proxy − W), the AWP direction of one kernel. Caller owns the result. */
export function awpDirection(w: tf.Tensor, wProxy: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const diff = tf.sub(wProxy, w);
    // 1e-20 as in the reference: only guards a zero gradient, never changes the scale otherwise.
    const scale = tf.div(tf.norm(w), tf.add(tf.norm(diff), 1e-20));
    return tf.mul(diff, scale);
  });
}

export class Awp {
  readonly options: AwpOptions;
  private readonly model: tf.LayersModel;
  private readonly proxy: tf.LayersModel;
  private readonly kernels: tf.Variable[];
  private readonly proxyKernels: tf.Variable[];
  /** Per-kernel direction v of the current batch. */
  private directions: tf.Tensor[] | null = null;
  /** The kernels before perturbation (shares their data), while perturbed. */
  private saved: tf.Tensor[] | null = null;

  constructor(model: tf.LayersModel, proxy: tf.LayersModel, options: AwpOptions) {
    if (!(options.gamma >= 0)) throw new InputError(`awp.gamma: expected a number ≥ 0, got ${options.gamma}`);
    if (!(options.proxyLr > 0)) throw new InputError(`awp.proxyLr: expected a number > 0, got ${options.proxyLr}`);
    if (model.weights.length !== proxy.weights.length) throw new Error('Awp: the proxy must have the architecture of the model');
    this.options = options;
    this.model = model;
    this.proxy = proxy;
    this.kernels = kernelVariables(model);
    this.proxyKernels = kernelVariables(proxy);
  }

  /**
   * Steps 1-3: computes v for this batch. `loss(forward)` must build the training objective with the given
   * train-mode forward pass (which runs on the proxy). Nothing is read back to the host: no per-step sync.
   */
  computeDirections(
    loss: (forward: TrainForward) => tf.Scalar,
    forwardOf: (model: tf.LayersModel) => TrainForward,
    /** Data parallelism: sums the proxy's gradients over the tasks (each weighted by its share of the batch). */
    reduce: (grads: tf.Tensor[]) => tf.Tensor[] = (g) => g.map((x) => x.clone()),
  ): void {
    this.disposeDirections();
    const src = this.model.weights;
    // All weights, BN statistics included: the proxy's forward must see the real model's state.
    this.proxy.weights.forEach((p, i) => p.write(src[i]!.read()));
    const proxyForward = forwardOf(this.proxy);
    const { value, grads } = tf.variableGrads(() => loss(proxyForward), this.proxyKernels);
    let summed: tf.Tensor[];
    try {
      summed = reduce(this.proxyKernels.map((k) => grads[k.name]!));
    } finally {
      tf.dispose([value, ...Object.values(grads)]);
    }
    tf.tidy(() => {
      // Plain SGD (no momentum, no decay) ascending the loss.
      this.proxyKernels.forEach((k, i) => k.assign(tf.add(k, tf.mul(summed[i]!, this.options.proxyLr))));
    });
    tf.dispose(summed);
    this.directions = this.kernels.map((w, i) => awpDirection(w, this.proxyKernels[i]!));
  }

  /** Step 4: W ← W + γ·v. */
  perturb(): void {
    if (!this.directions) throw new Error('Awp.perturb: computeDirections first');
    if (this.saved) throw new Error('Awp.perturb: already perturbed');
    const gamma = this.options.gamma;
    this.saved = this.kernels.map((w) => tf.clone(w));
    tf.tidy(() => this.kernels.forEach((w, i) => w.assign(tf.add(this.saved![i]!, tf.mul(this.directions![i]!, gamma)))));
  }

  /**
   * Step 5: W ← W − γ·v, written as W_before + (W_now − W_perturbed): in exact arithmetic the same as the
   * reference, and without an optimiser step in between it gives back W_before bit for bit.
   */
  restore(): void {
    if (!this.saved || !this.directions) throw new Error('Awp.restore: not perturbed');
    const gamma = this.options.gamma;
    tf.tidy(() =>
      this.kernels.forEach((w, i) => {
        const before = this.saved![i]!;
        const perturbed = tf.add(before, tf.mul(this.directions![i]!, gamma));
        w.assign(tf.add(before, tf.sub(w, perturbed)));
      }),
    );
    tf.dispose(this.saved);
    this.saved = null;
    this.disposeDirections();
  }

  private disposeDirections(): void {
    if (this.directions) tf.dispose(this.directions);
    this.directions = null;
  }

  /** Releases the per-batch tensors (not the models). */
  dispose(): void {
    if (this.saved) tf.dispose(this.saved);
    this.saved = null;
    this.disposeDirections();
  }
}
