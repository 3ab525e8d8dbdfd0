/**
 * The inference executor attacks run on: the model's function x ↦ logits in inference mode, compiled once from
 * the layers model (the weights stay in the layers; this holds folded copies).
 *
 * - A BN that reads a convolution alone is folded into it: W' = W·s, b' = β − μ·s with s = γ/√(σ² + ε) per
 *   output channel (running statistics), and a ReLU after it becomes the convolution's fused activation: one
 *   FusedConv2D kernel instead of conv, batchNorm and relu.
 * - A BN that reads anything else (the pre-activation BN-ReLU of a WRN block reads the residual sum, which the
 *   next shortcut also reads unnormalised, so nothing can absorb it) runs as batchNorm + relu.
 * - A ZeroPadding2D feeding a 'valid' convolution (PyTorch's symmetric padding) becomes its explicit padding.
 * - These ops carry their own input gradients (the weights are constants here), so an attack's gradient costs
 *   ~3 kernels per convolution (TF's ReluGrad and explicit-padding backprop, kernels.ts); each frees its saved
 *   tensors once its backward has run.
 * - `fn.forwardBackward` runs the same backwards in reverse step order without tfjs' tape (no Identity/Reshape
 *   bookkeeping kernels, a quarter fewer kernels per small-CNN input gradient): the attacks' lossAndGrad uses it.
 * - A BN + ReLU that stays (pre-activation) runs as one oneDNN kernel where available (kernels.ts).
 * - Every activation is disposed after its last reader.
 *
 * The values equal `model.apply(x, { training: false })` to float32 rounding (tests check every zoo model).
 * Compile again after the weights change (the folded copies do not follow the layers).
 */
import * as tf from '@tensorflow/tfjs';
import { absorbedPadding, channelsLastBn, weightOf } from './forward.js';
import { activationOf, kind, layerGraph, type GraphNode } from './graph.js';
import { batchNormReluInference, conv2dBackpropInput, conv2dBiasAct, reluBackward, type ConvPad } from '../kernels.js';

export interface InferenceModel {
  /** Logits of NHWC inputs in [0, 1]; differentiable with respect to x. Carries its activation bytes per row. */
  fn: ((x: tf.Tensor4D) => tf.Tensor2D) & {
    readonly activationBytesPerRow: number;
    /** Logits and ∂L/∂x from ∂L/∂logits, without tfjs' tape (the attacks' input gradient, attacks/grad.ts). */
    readonly forwardBackward: (x: tf.Tensor4D, outputGrad: (logits: tf.Tensor2D) => tf.Tensor2D) => { logits: tf.Tensor2D; grad: tf.Tensor4D };
  };
  /** Number of steps (fused layer groups) one forward runs. */
  steps: number;
  /** Frees the folded weights. */
  dispose(): void;
}

interface Step {
  /** Node whose output this step produces (the last layer of the fused group). */
  at: number;
  inputs: number[];
  /** The forward as tfjs ops the tape can differentiate (model.apply's path: fn). */
  run: (ins: tf.Tensor[]) => tf.Tensor;
  /** The forward without a gradient wrapper and its backward (forwardBackward); absent: run under tf.grad. */
  raw?: { forward: (ins: tf.Tensor[]) => tf.Tensor; backward: Backward };
}

/** The ReLU node reading node i alone, if any. */
function reluAfter(nodes: GraphNode[], i: number): number | undefined {
  const r = nodes[i]!.readers;
  if (r.length !== 1) return undefined;
  const n = nodes[r[0]!]!;
  return kind(n) === 'Activation' && activationOf(n.layer) === 'relu' ? r[0] : undefined;
}

/** A Conv2D the executor runs itself: dilation 1, no activation of its own. */
function plainConv(cfg: Record<string, unknown>): boolean {
  const dil = cfg.dilationRate as number | number[];
  return (Array.isArray(dil) ? dil.every((d) => d === 1) : dil === 1) && cfg.activation === 'linear';
}

/** The BN node reading node i alone, if any. */
function bnAfter(nodes: GraphNode[], i: number): number | undefined {
  const r = nodes[i]!.readers;
  if (r.length !== 1) return undefined;
  const n = nodes[r[0]!]!;
  const cfg = n.layer.getConfig() as Record<string, unknown>;
  return kind(n) === 'BatchNormalization' && channelsLastBn(n.layer.input as tf.SymbolicTensor, cfg) ? r[0] : undefined;
}

/** Per-channel scale s = γ/√(σ² + ε) and shift β − μ·s of an inference-mode BN. */
function bnAffine(layer: tf.layers.Layer): { scale: tf.Tensor1D; shift: tf.Tensor1D } {
  const eps = (layer.getConfig() as { epsilon: number }).epsilon;
  return tf.tidy(() => {
    const scale = tf.mul(weightOf(layer, 'gamma'), tf.rsqrt(tf.add(weightOf(layer, 'moving_variance'), eps))) as tf.Tensor1D;
    const shift = tf.sub(weightOf(layer, 'beta'), tf.mul(weightOf(layer, 'moving_mean'), scale)) as tf.Tensor1D;
    return { scale, shift };
  });
}

/** A step's backward: the gradients of its inputs from that of its output (its inputs and output still alive). */
type Backward = (dy: tf.Tensor, ins: tf.Tensor[], out: tf.Tensor) => tf.Tensor[];

/** A one-input op with its own backward as a tfjs op the tape differentiates (the backward frees its saved output). */
function withGrad(forward: (x: tf.Tensor4D) => tf.Tensor4D, backward: Backward, keepsOutput: boolean) {
  return (x: tf.Tensor4D): tf.Tensor4D => {
    const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [xIn, save] = args as [tf.Tensor4D, tf.GradSaveFunc];
      const y = forward(xIn);
      save(keepsOutput ? [y] : []);
      return {
        value: y,
        gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
          const [dx] = backward(dy, [xIn], saved[0]!);
          dy.dispose();
          for (const t of saved) t.dispose();
          return dx!;
        },
      };
    });
    return op(x) as tf.Tensor4D;
  };
}

/**
 * act(conv(x, W) + b) with W, b constants: one kernel forward (kernels.ts; no bias add where b is absent: adding
 * zeros costs a full pass); backward ReLU mask + Conv2DBackpropInput.
 */
function convOp(W: tf.Tensor4D, b: tf.Tensor1D | undefined, strides: [number, number], pad: ConvPad, relu: boolean) {
  const forward = (x: tf.Tensor4D) => conv2dBiasAct(x, W, b, strides, pad, relu);
  const backward: Backward = (dy, ins, y) => {
    const g = relu ? reluBackward(dy, y) : dy;
    const dx = conv2dBackpropInput(g as tf.Tensor4D, W, ins[0]!.shape, strides, pad);
    if (g !== dy) g.dispose();
    return [dx];
  };
  return { forward, backward, keepsOutput: relu };
}

/** BN with running statistics (+ ReLU: one kernel, kernels.ts); backward dy·1[y > 0]·s. */
function bnOp(layer: tf.layers.Layer, scale: tf.Tensor1D, relu: boolean) {
  const eps = (layer.getConfig() as { epsilon: number }).epsilon;
  const [mean, variance, beta, gamma] = ['moving_mean', 'moving_variance', 'beta', 'gamma'].map((n) => weightOf(layer, n) as tf.Tensor1D);
  const forward = (x: tf.Tensor4D) =>
    relu && beta && gamma
      ? batchNormReluInference(x, mean!, variance!, beta, gamma, eps)
      : tf.tidy(() => {
          const normed = tf.batchNorm4d(x, mean!, variance!, beta, gamma, eps);
          return relu ? tf.relu(normed) : normed;
        });
  const backward: Backward = (dy, _ins, y) => [tf.tidy(() => tf.mul(relu ? reluBackward(dy, y) : dy, scale))];
  return { forward, backward, keepsOutput: relu };
}

/** Compiles the inference executor of a zoo model (single input, single output, each layer called once). */
export function inferenceModel(model: tf.LayersModel): InferenceModel {
  const { nodes, output } = layerGraph(model);
  const owned: tf.Tensor[] = [];
  const own = <T extends tf.Tensor>(t: T): T => {
    owned.push(t);
    return t;
  };
  const steps: Step[] = [];
  const absorbed = new Set<number>();
  // PyTorch's symmetric padding of strided convolutions becomes the convolution's explicit padding.
  const padOf = absorbedPadding(nodes, true);
  for (const [, p] of padOf) absorbed.add(p.node);
  for (let i = 0; i < nodes.length; i++) {
    if (absorbed.has(i)) continue;
    const node = nodes[i]!;
    const layer = node.layer;
    const cfg = layer.getConfig() as Record<string, unknown>;
    const inputs = node.inputs;
    const fallback = (ins: tf.Tensor[]) => layer.apply(ins.length === 1 ? ins[0]! : ins, { training: false }) as tf.Tensor;
    switch (kind(node)) {
      case 'Conv2D': {
        if (!plainConv(cfg)) {
          steps.push({ at: i, inputs, run: fallback });
          break;
        }
        let W = weightOf(layer, 'kernel') as tf.Tensor4D;
        let b = cfg.useBias ? (weightOf(layer, 'bias') as tf.Tensor1D) : undefined;
        let at = i;
        let relu = false;
        const bn = bnAfter(nodes, i);
        if (bn !== undefined) {
          const { scale, shift } = bnAffine(nodes[bn]!.layer);
          const [w0, b0] = [W, b];
          [W, b] = tf.tidy(() => [tf.mul(w0, scale), b0 ? tf.add(tf.mul(b0, scale), shift) : shift.clone()] as [tf.Tensor4D, tf.Tensor1D]);
          tf.dispose([scale, shift]);
          own(W);
          own(b);
          absorbed.add(bn);
          at = bn;
          const r = reluAfter(nodes, bn);
          if (r !== undefined) {
            absorbed.add(r);
            at = r;
            relu = true;
          }
        }
        const padded = padOf.get(i);
        const conv = convOp(W, b, cfg.strides as [number, number], padded?.pad ?? (cfg.padding as 'same' | 'valid'), relu);
        const op = withGrad(conv.forward, conv.backward, conv.keepsOutput);
        const forward = (ins: tf.Tensor[]) => conv.forward(ins[0] as tf.Tensor4D);
        steps.push({ at, inputs: padded?.inputs ?? inputs, run: (ins) => op(ins[0] as tf.Tensor4D), raw: { forward, backward: conv.backward } });
        break;
      }
      case 'BatchNormalization': {
        if (!channelsLastBn(layer.input as tf.SymbolicTensor, cfg)) {
          steps.push({ at: i, inputs, run: fallback });
          break;
        }
        const { scale, shift } = bnAffine(layer);
        shift.dispose();
        own(scale);
        const r = reluAfter(nodes, i);
        if (r !== undefined) absorbed.add(r);
        const bn = bnOp(layer, scale, r !== undefined);
        const op = withGrad(bn.forward, bn.backward, bn.keepsOutput);
        const forward = (ins: tf.Tensor[]) => bn.forward(ins[0] as tf.Tensor4D);
        steps.push({ at: r ?? i, inputs, run: (ins) => op(ins[0] as tf.Tensor4D), raw: { forward, backward: bn.backward } });
        break;
      }
      case 'Add':
        {
          const run = (ins: tf.Tensor[]) => (ins.length === 2 ? tf.add(ins[0]!, ins[1]!) : tf.addN(ins));
          // Same-shape sums only (a zoo residual); a broadcasting Add goes through tf.grad.
          const same = (node.layer.input as tf.SymbolicTensor[]).every((t, _, all) => t.shape.join() === all[0]!.shape.join());
          steps.push({ at: i, inputs, run, ...(same ? { raw: { forward: run, backward: (dy, ins) => ins.map(() => dy.clone()) } } : {}) });
        }
        break;
      case 'GlobalAveragePooling2D':
        {
          const run = (ins: tf.Tensor[]) => tf.mean(ins[0]!, [1, 2]);
          // tfjs' gradient of mean: dy broadcast over H, W, divided by H·W (the same kernels, the same values).
          const backward: Backward = (dy, ins) =>
            tf.tidy(() => {
              const [n, h, w, c] = ins[0]!.shape as number[];
              return [tf.div(tf.mul(tf.reshape(dy, [n!, 1, 1, c!]), tf.ones(ins[0]!.shape)), h! * w!)];
            });
          steps.push({ at: i, inputs, run, raw: { forward: run, backward } });
        }
        break;
      case 'Dense': {
        if (cfg.activation !== 'linear' || !cfg.useBias) {
          steps.push({ at: i, inputs, run: fallback });
          break;
        }
        const kernel = weightOf(layer, 'kernel') as tf.Tensor2D;
        const bias = weightOf(layer, 'bias');
        const run = (ins: tf.Tensor[]) => tf.fused.matMul({ a: ins[0] as tf.Tensor2D, b: kernel, bias });
        const backward: Backward = (dy) => [tf.matMul(dy as tf.Tensor2D, kernel, false, true)];
        steps.push({ at: i, inputs, run, raw: { forward: run, backward } });
        break;
      }
      default:
        steps.push({ at: i, inputs, run: fallback });
    }
  }
  // Readers of each step's output, counted on the steps (absorbed layers read nothing).
  const stepOf = new Map<number, number>(steps.map((s, k) => [s.at, k]));
  const pendingInit = steps.map(() => 0);
  for (const s of steps) for (const j of s.inputs) if (j >= 0) pendingInit[stepOf.get(j)!]! += 1;
  const fn = (x: tf.Tensor4D): tf.Tensor2D => {
    const values: (tf.Tensor | undefined)[] = new Array(steps.length);
    const pending = pendingInit.slice();
    steps.forEach((s, k) => {
      values[k] = s.run(s.inputs.map((j) => (j < 0 ? x : values[stepOf.get(j)!]!)));
      for (const j of s.inputs) {
        if (j < 0 || j === output) continue;
        const p = stepOf.get(j)!;
        if (--pending[p]! === 0) values[p]!.dispose();
      }
    });
    return values[stepOf.get(output)!] as tf.Tensor2D;
  };
  /**
   * Logits and ∂L/∂x without the tape: the forward keeps every step's inputs and output (what the tape would save),
   * `outputGrad` gives ∂L/∂logits, and the steps' own backwards run in reverse order, summing the gradients of
   * outputs read twice (the residual sums). A step with no backward of its own (a layer run by model.apply)
   * recomputes its forward under tf.grad. The same backward kernels as fn's tape, without its bookkeeping.
   */
  const forwardBackward = (x: tf.Tensor4D, outputGrad: (logits: tf.Tensor2D) => tf.Tensor2D): { logits: tf.Tensor2D; grad: tf.Tensor4D } => {
    const values: tf.Tensor[] = new Array(steps.length);
    const inputOf = (j: number) => (j < 0 ? x : values[stepOf.get(j)!]!);
    steps.forEach((s, k) => {
      const ins = s.inputs.map(inputOf);
      values[k] = s.raw ? s.raw.forward(ins) : s.run(ins);
    });
    const out = stepOf.get(output)!;
    const logits = values[out] as tf.Tensor2D;
    const grads: (tf.Tensor | undefined)[] = new Array(steps.length);
    let gx: tf.Tensor | undefined;
    const accumulate = (j: number, g: tf.Tensor) => {
      const prev = j < 0 ? gx : grads[stepOf.get(j)!];
      const sum = prev ? tf.add(prev, g) : g;
      if (prev) tf.dispose([prev, g]);
      if (j < 0) gx = sum;
      else grads[stepOf.get(j)!] = sum;
    };
    grads[out] = outputGrad(logits);
    for (let k = steps.length - 1; k >= 0; k--) {
      const s = steps[k]!;
      const dy = grads[k];
      if (!dy) continue;
      const ins = s.inputs.map(inputOf);
      const gIns = s.raw
        ? s.raw.backward(dy, ins, values[k]!)
        : (() => {
            const { value, grads: g } = tf.engine().gradients(() => s.run(ins), ins, dy, true);
            value.dispose();
            return g;
          })();
      dy.dispose();
      grads[k] = undefined;
      s.inputs.forEach((j, n) => {
        if (gIns[n]) accumulate(j, gIns[n]);
      });
    }
    values.forEach((v, k) => {
      if (k !== out) v.dispose();
    });
    return { logits, grad: (gx ?? tf.zerosLike(x)) as tf.Tensor4D };
  };
  // The activations one input row holds (every step's output, float32): sizes the attacks' blocks (block-rows.ts).
  const activationBytesPerRow = steps.reduce((sum, s) => {
    const shape = nodes[s.at]!.layer.outputShape as (number | null)[];
    return sum + 4 * shape.slice(1).reduce<number>((a, d) => a * (d ?? 1), 1);
  }, 0);
  return { fn: Object.assign(fn, { activationBytesPerRow, forwardBackward }), steps: steps.length, dispose: () => tf.dispose(owned) };
}
