/**
 * Kernels where tfjs-node runs more TensorFlow work than the math needs, for the model executors (models/inference.ts,
 * models/trainOps.ts) and the attacks' per-example bookkeeping. On the native backend ('tensorflow': tfjs-node and
 * tfjs-node-gpu) they call TensorFlow's own kernel, registered as a tfjs kernel so the engine tracks the output like any other;
 * elsewhere (the pure-JS `cpu` backend of the tests) they run tfjs' ops, with the same values (batch norm: the
 * caller composes tfjs' ops, equal to float32 rounding).
 *
 * - ReLU's backward dy·1[y > 0]: tfjs-node's `step` is six TensorFlow ops (IsNan, Greater, OnesLike, Fill and two
 *   Selects) over the whole activation, a third of a small CNN's input gradient; TensorFlow's ReluGrad is one pass.
 * - Convolution gradients with explicit padding: PyTorch pads a strided 3×3 convolution by 1 on every side, which
 *   TF's 'same' does not (it pads after only), so the models express it as ZeroPadding2D + 'valid' (a PadV2 over the
 *   activation forward and a Slice backward). Conv2D takes explicit paddings on tfjs-node, but its
 *   Conv2DBackpropInput / Conv2DBackpropFilter kernels refuse them; TensorFlow's own kernels accept them. The
 *   filter gradient pads its input and runs 'valid' instead: TensorFlow hands explicit-padding backprops to its
 *   generic kernel rather than oneDNN's, 2.5x slower at a small CNN's stride-2 layer (measured); the padded copy
 *   costs a tenth of that.
 * - Convolution + bias + ReLU (the inference executor's folded layers): tfjs-node's FusedConv2D adds the bias with
 *   a broadcasting Add (and pads explicitly padded inputs with a separate op); TensorFlow's BiasAdd is a cheaper
 *   pass. Conv2D + BiasAdd + Relu run as one tfjs kernel: a fifth less time for the small CNN's forward (measured).
 *   With ikl-at's binding patch (list attributes), oneDNN's fused convolution does all three in one kernel instead
 *   (fusedConvAttrs); the three ops remain the path of an unpatched binding.
 * - Choosing whole rows by a per-row mask (the attacks' per-example bookkeeping): tfjs' `where` first tiles the
 *   mask to the tensors' full shape; TensorFlow's Select takes a vector condition over the first dimension as is.
 * - Inference-mode BN + ReLU that no convolution absorbs (pre-activation blocks): tfjs' batchNorm and relu are
 *   several passes; oneDNN's fused batch norm with its Relu activation is one (batchNormReluInference).
 * - Training-mode batch norm: composed from tfjs ops it is about fifteen elementwise passes per layer forward and
 *   backward (moments, normalise, the gradient's sums and correction); TensorFlow's FusedBatchNormV3 and
 *   FusedBatchNormGradV3 do each direction in one kernel, as PyTorch does.
 */
import * as tf from '@tensorflow/tfjs';

/** 'same', 'valid', or NHWC explicit padding [[0, 0], [top, bottom], [left, right], [0, 0]]. */
export type ConvPad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

/** The part of tfjs-node's NodeJSKernelBackend these kernels use. */
interface NativeBackend {
  binding: Record<string, number>;
  executeSingleOutput(name: string, attrs: { name: string; type: number; value: unknown }[], inputs: tf.TensorInfo[]): tf.Tensor;
  executeMultipleOutputs(name: string, attrs: { name: string; type: number; value: unknown }[], inputs: tf.TensorInfo[], numOutputs: number): tf.Tensor[];
}

const NATIVE = 'tensorflow';
const RELU_GRAD = 'IklReluGrad';
const BACKPROP_INPUT = 'IklConv2DBackpropInput';
const BACKPROP_FILTER = 'IklConv2DBackpropFilter';
const CONV_BIAS_ACT = 'IklConv2DBiasAct';
const SELECT_ROWS = 'IklSelectRows';
const BN_TRAIN = 'IklFusedBatchNormTrain';
const BN_GRAD = 'IklFusedBatchNormGrad';
const BN_RELU_INFERENCE = 'IklBatchNormReluInference';

interface ConvAttrs {
  strides: [number, number];
  pad: ConvPad;
  /** inputShape (backprop input) or filterShape (backprop filter); unused by the forward. */
  shape: number[];
}

/** TF's Conv2D / Conv2DBackprop* attributes for NHWC float32 with tfjs' pad convention. */
function convAttrs(b: NativeBackend, { strides, pad }: ConvAttrs) {
  const B = b.binding;
  const explicit = Array.isArray(pad);
  return [
    { name: 'T', type: B.TF_ATTR_TYPE!, value: B.TF_FLOAT },
    { name: 'strides', type: B.TF_ATTR_INT!, value: [1, strides[0], strides[1], 1] },
    { name: 'padding', type: B.TF_ATTR_STRING!, value: explicit ? 'EXPLICIT' : pad.toUpperCase() },
    ...(explicit ? [{ name: 'explicit_paddings', type: B.TF_ATTR_INT!, value: pad.flat() }] : []),
    { name: 'data_format', type: B.TF_ATTR_STRING!, value: 'NHWC' },
    { name: 'dilations', type: B.TF_ATTR_INT!, value: [1, 1, 1, 1] },
    { name: 'use_cudnn_on_gpu', type: B.TF_ATTR_BOOL!, value: true },
  ];
}

/** FusedBatchNormV3 / FusedBatchNormGradV3 attributes: NHWC float32, batch statistics. */
function bnAttrs(b: NativeBackend, epsilon: number, forward: boolean) {
  const B = b.binding;
  return [
    { name: 'T', type: B.TF_ATTR_TYPE!, value: B.TF_FLOAT },
    { name: 'U', type: B.TF_ATTR_TYPE!, value: B.TF_FLOAT },
    { name: 'epsilon', type: B.TF_ATTR_FLOAT!, value: epsilon },
    // 1: the op's running-statistics outputs are this batch's own (the caller keeps the running average).
    ...(forward ? [{ name: 'exponential_avg_factor', type: B.TF_ATTR_FLOAT!, value: 1 }] : []),
    { name: 'data_format', type: B.TF_ATTR_STRING!, value: 'NHWC' },
    { name: 'is_training', type: B.TF_ATTR_BOOL!, value: true },
  ];
}

/**
 * oneDNN's fused convolution (conv + BiasAdd [+ Relu] in one primitive, the output written once) through the patched
 * binding's list attributes. Called by its oneDNN name: TensorFlow's eager runtime rewrites Conv2D to oneDNN's
 * kernel but not `_FusedConv2D`, whose generic Eigen kernel is slower than the three separate ops (measured:
 * 1.1–1.2x at CIFAR shapes); `_kernel` selects the oneDNN registration, as TensorFlow's graph rewrite does.
 * No `is_filter_const`: the eager kernel cache is shared by every call with the same attributes, so a cached filter
 * would leak between models.
 */
function fusedConvAttrs(b: NativeBackend, relu: boolean) {
  const B = b.binding;
  return [
    { name: 'num_args', type: B.TF_ATTR_INT!, value: 1 },
    { name: 'TArgs', type: B.TF_ATTR_TYPE!, value: [B.TF_FLOAT] },
    { name: 'fused_ops', type: B.TF_ATTR_STRING!, value: relu ? ['BiasAdd', 'Relu'] : ['BiasAdd'] },
    { name: '_kernel', type: B.TF_ATTR_STRING!, value: 'MklNameChangeOp' },
  ];
}

/**
 * The version of ikl-at's binding patch (scripts/native/) this code expects: list attributes here, collectives in
 * src/collective/native.ts (which imports it). scripts/setup-native.sh checks the same number.
 */
export const IKL_PATCH = 1;

/** Whether the fused convolution ran (true), failed once (false), or has not been tried (undefined). */
let fusedConvWorks: boolean | undefined;

/**
 * Whether conv2dBiasAct runs as one oneDNN kernel (patched binding, oneDNN on), known after its first call with a
 * bias on the native backend; false otherwise (three TensorFlow ops, or tfjs' FusedConv2D on other backends).
 */
export function fusedConvInUse(): boolean {
  return fusedConvWorks === true && tf.getBackend() === NATIVE;
}

/** Turns the fused convolution and inference BN + ReLU off (false) or back on (true) for paired A/B benchmarks (bench/models.ts). */
export function preferFusedConv(on: boolean): void {
  fusedConvWorks = on ? undefined : false;
  bnReluWorks = on ? undefined : false;
}

let registered = false;

function registerNative(): void {
  if (registered) return;
  registered = true;
  const T = (b: NativeBackend) => ({ name: 'T', type: b.binding.TF_ATTR_TYPE!, value: b.binding.TF_FLOAT });
  tf.registerKernel({
    kernelName: RELU_GRAD,
    backendName: NATIVE,
    kernelFunc: ({ inputs, backend }) => {
      const b = backend as unknown as NativeBackend;
      return b.executeSingleOutput('ReluGrad', [T(b)], [inputs.dy!, inputs.y!]);
    },
  });
  // Both backprops take the shape of the tensor they produce as an int32 tensor input.
  const backprop = (op: string, order: (shape: tf.Tensor, a: tf.TensorInfo, b: tf.TensorInfo) => tf.TensorInfo[]) =>
    (({ inputs, backend, attrs }) => {
      const b = backend as unknown as NativeBackend;
      const a = attrs as unknown as ConvAttrs;
      const shape = tf.tensor1d(a.shape, 'int32');
      try {
        return b.executeSingleOutput(op, convAttrs(b, a), order(shape, inputs.a!, inputs.b!));
      } finally {
        shape.dispose();
      }
    }) as tf.KernelFunc;
  // Conv2DBackpropInput(input_sizes, filter, out_backprop); Conv2DBackpropFilter(input, filter_sizes, out_backprop).
  tf.registerKernel({ kernelName: BACKPROP_INPUT, backendName: NATIVE, kernelFunc: backprop('Conv2DBackpropInput', (s, filter, dy) => [s, filter, dy]) });
  tf.registerKernel({ kernelName: BACKPROP_FILTER, backendName: NATIVE, kernelFunc: backprop('Conv2DBackpropFilter', (s, x, dy) => [x, s, dy]) });
  // Select(condition [B], a, b) with a, b of shape [B, ...].
  tf.registerKernel({
    kernelName: SELECT_ROWS,
    backendName: NATIVE,
    kernelFunc: ({ inputs, backend }) => {
      const b = backend as unknown as NativeBackend;
      const dtype = (inputs.a as tf.TensorInfo).dtype;
      return b.executeSingleOutput(
        'Select',
        [{ name: 'T', type: b.binding.TF_ATTR_TYPE!, value: dtype === 'float32' ? b.binding.TF_FLOAT : b.binding.TF_INT32 }],
        [inputs.mask!, inputs.a!, inputs.b!],
      );
    },
  });
  // Conv2D(x, filter) [→ BiasAdd(·, bias)] [→ Relu]; the intermediates are freed as soon as the next op has run.
  tf.registerKernel({
    kernelName: CONV_BIAS_ACT,
    backendName: NATIVE,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const b = backend as unknown as NativeBackend;
      const a = attrs as unknown as ConvAttrs & { relu: boolean };
      if (inputs.bias && fusedConvWorks !== false && b.binding.IKL_PATCH === IKL_PATCH) {
        try {
          const y = b.executeSingleOutput(
            '_MklNativeFusedConv2D',
            [...convAttrs(b, a), ...fusedConvAttrs(b, a.relu)],
            [inputs.x!, inputs.filter!, inputs.bias],
          );
          fusedConvWorks = true;
          return y;
        } catch (e) {
          // The first call decides (oneDNN off: TF_ENABLE_ONEDNN_OPTS=0, or a build without it); later ones rethrow.
          if (fusedConvWorks === true) throw e;
          fusedConvWorks = false;
        }
      }
      let y = b.executeSingleOutput('Conv2D', convAttrs(b, a), [inputs.x!, inputs.filter!]);
      const then = (op: string, extra: { name: string; type: number; value: unknown }[], more: tf.TensorInfo[]) => {
        const next = b.executeSingleOutput(op, [T(b), ...extra], [y, ...more]);
        y.dispose();
        y = next;
      };
      if (inputs.bias) then('BiasAdd', [{ name: 'data_format', type: b.binding.TF_ATTR_STRING!, value: 'NHWC' }], [inputs.bias]);
      if (a.relu) then('Relu', [], []);
      return y;
    },
  });
  // relu(BN(x)) with running statistics: oneDNN's _FusedBatchNormEx (inference, activation Relu) → y and five
  // outputs that inference leaves empty. Feature-detected like the fused convolution.
  tf.registerKernel({
    kernelName: BN_RELU_INFERENCE,
    backendName: NATIVE,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const b = backend as unknown as NativeBackend;
      const B = b.binding;
      const bnAttrs = [
        { name: 'T', type: B.TF_ATTR_TYPE!, value: B.TF_FLOAT },
        { name: 'U', type: B.TF_ATTR_TYPE!, value: B.TF_FLOAT },
        { name: 'epsilon', type: B.TF_ATTR_FLOAT!, value: (attrs as { epsilon: number }).epsilon },
        { name: 'data_format', type: B.TF_ATTR_STRING!, value: 'NHWC' },
        { name: 'is_training', type: B.TF_ATTR_BOOL!, value: false },
        { name: 'num_side_inputs', type: B.TF_ATTR_INT!, value: 0 },
        { name: 'activation_mode', type: B.TF_ATTR_STRING!, value: 'Relu' },
        { name: '_kernel', type: B.TF_ATTR_STRING!, value: 'MklNameChangeOp' },
      ];
      const out = b.executeMultipleOutputs(
        '_MklNativeFusedBatchNormEx',
        bnAttrs,
        [inputs.x!, inputs.scale!, inputs.offset!, inputs.mean!, inputs.variance!],
        6,
      );
      tf.dispose(out.slice(1));
      return out[0]!;
    },
  });
  // FusedBatchNormV3(x, scale, offset, mean, variance) → y, batch mean, batch variance (Bessel-corrected), and three
  // reserve spaces for the gradient (their meaning differs between the CPU and cuDNN kernels: passed on opaque).
  tf.registerKernel({
    kernelName: BN_TRAIN,
    backendName: NATIVE,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const b = backend as unknown as NativeBackend;
      const none = tf.tensor1d([], 'float32');
      try {
        const ins = [inputs.x!, inputs.scale!, inputs.offset!, none, none];
        return b.executeMultipleOutputs('FusedBatchNormV3', bnAttrs(b, (attrs as { epsilon: number }).epsilon, true), ins, 6);
      } finally {
        none.dispose();
      }
    },
  });
  // FusedBatchNormGradV3(dy, x, scale, reserve 1–3) → dx, dscale, doffset and two unused reserve outputs.
  tf.registerKernel({
    kernelName: BN_GRAD,
    backendName: NATIVE,
    kernelFunc: ({ inputs, backend, attrs }) => {
      const b = backend as unknown as NativeBackend;
      const ins = [inputs.dy!, inputs.x!, inputs.scale!, inputs.r1!, inputs.r2!, inputs.r3!];
      const out = b.executeMultipleOutputs('FusedBatchNormGradV3', bnAttrs(b, (attrs as { epsilon: number }).epsilon, false), ins, 5);
      tf.dispose(out.slice(3));
      return out.slice(0, 3);
    },
  });
}

function native(): boolean {
  if (tf.getBackend() !== NATIVE) return false;
  const b = tf.backend() as unknown as Partial<NativeBackend>;
  if (typeof b.executeSingleOutput !== 'function' || !b.binding) return false;
  registerNative();
  return true;
}

/** dy·1[y > 0] for y = relu(·) (the gradient of ReLU, from its output). */
export function reluBackward(dy: tf.Tensor, y: tf.Tensor): tf.Tensor {
  if (native() && dy.dtype === 'float32') return tf.engine().runKernel(RELU_GRAD, { dy, y }) as tf.Tensor;
  return tf.tidy(() => tf.mul(dy, tf.step(y)));
}

/** Row i of a where mask[i], else of b (mask: bool [B]; a, b: the same shape [B, ...]); not differentiable. */
export function selectRows<T extends tf.Tensor>(mask: tf.Tensor1D, a: T, b: T): T {
  const sameShape = a.rank === b.rank && a.shape.every((d, i) => d === b.shape[i]);
  if (native() && mask.dtype === 'bool' && (a.dtype === 'float32' || a.dtype === 'int32') && a.dtype === b.dtype && a.rank > 1 && sameShape) {
    return tf.engine().runKernel(SELECT_ROWS, { mask, a, b }) as T;
  }
  return tf.tidy(() => tf.where(mask.reshape([mask.shape[0], ...new Array<number>(a.rank - 1).fill(1)]), a, b) as T);
}

/** act(conv(x, W) + b) of an NHWC convolution (dilation 1), act ReLU or identity, b optional. */
export function conv2dBiasAct(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor1D | undefined,
  strides: [number, number],
  pad: ConvPad,
  relu: boolean,
): tf.Tensor4D {
  if (native() && x.dtype === 'float32') {
    const inputs: tf.NamedTensorMap = bias ? { x, filter, bias } : { x, filter };
    return tf.engine().runKernel(CONV_BIAS_ACT, inputs, { strides, pad, shape: [], relu } as never) as tf.Tensor4D;
  }
  const attrs = { strides, pad, dataFormat: 'NHWC', dilations: [1, 1] };
  return (
    bias || relu
      ? tf.engine().runKernel('FusedConv2D', { x, filter, bias: bias! }, { ...attrs, activation: relu ? 'relu' : 'linear' })
      : tf.engine().runKernel('Conv2D', { x, filter }, attrs)
  ) as tf.Tensor4D;
}

/** ∂L/∂x of an NHWC convolution (dilation 1) from ∂L/∂y. */
export function conv2dBackpropInput(dy: tf.Tensor4D, filter: tf.Tensor4D, inputShape: number[], strides: [number, number], pad: ConvPad): tf.Tensor4D {
  if (native()) return tf.engine().runKernel(BACKPROP_INPUT, { a: filter, b: dy }, { strides, pad, shape: inputShape } as never) as tf.Tensor4D;
  return tf.engine().runKernel('Conv2DBackpropInput', { dy, filter }, { strides, pad, dataFormat: 'NHWC', inputShape } as never) as tf.Tensor4D;
}

/** ∂L/∂W of an NHWC convolution (dilation 1) from its input and ∂L/∂y. */
export function conv2dBackpropFilter(x: tf.Tensor4D, dy: tf.Tensor4D, filterShape: number[], strides: [number, number], pad: ConvPad): tf.Tensor4D {
  if (native()) {
    if (!Array.isArray(pad)) return tf.engine().runKernel(BACKPROP_FILTER, { a: x, b: dy }, { strides, pad, shape: filterShape } as never) as tf.Tensor4D;
    // Padded input, 'valid': the same sums, on oneDNN's kernel (see the header).
    const padded = tf.pad(x, pad);
    try {
      return tf.engine().runKernel(BACKPROP_FILTER, { a: padded, b: dy }, { strides, pad: 'valid', shape: filterShape } as never) as tf.Tensor4D;
    } finally {
      padded.dispose();
    }
  }
  return tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides, pad, dataFormat: 'NHWC', filterShape } as never) as tf.Tensor4D;
}

/** Whether the one-kernel inference BN + ReLU ran (true), failed once (false), or has not been tried. */
let bnReluWorks: boolean | undefined;

/**
 * relu(γ·(x − μ)/√(σ² + ε) + β) with running statistics μ, σ² (an inference-mode BN + ReLU that no convolution can
 * absorb: a pre-activation block's), NHWC float32. One oneDNN kernel on the native backend (6x fewer ms than tfjs'
 * batchNorm + relu at WRN shapes, measured); tfjs' batchNorm4d + relu elsewhere, or when oneDNN is off.
 */
export function batchNormReluInference(
  x: tf.Tensor4D,
  mean: tf.Tensor1D,
  variance: tf.Tensor1D,
  offset: tf.Tensor1D,
  scale: tf.Tensor1D,
  epsilon: number,
): tf.Tensor4D {
  if (native() && x.dtype === 'float32' && bnReluWorks !== false) {
    try {
      const y = tf.engine().runKernel(BN_RELU_INFERENCE, { x, scale, offset, mean, variance }, { epsilon } as never) as tf.Tensor4D;
      bnReluWorks = true;
      return y;
    } catch (e) {
      // The first call decides (oneDNN off: TF_ENABLE_ONEDNN_OPTS=0); later failures are errors.
      if (bnReluWorks === true) throw e;
      bnReluWorks = false;
    }
  }
  return tf.tidy(() => tf.relu(tf.batchNorm4d(x, mean, variance, offset, scale, epsilon)));
}

/** Whether batchNormReluInference runs as one kernel (known after its first call on the native backend). */
export function bnReluInUse(): boolean {
  return bnReluWorks === true && tf.getBackend() === NATIVE;
}

/** What the batch-norm backward needs from the forward: opaque to the caller, disposed after the backward. */
export interface FusedBatchNormSaved {
  reserve: [tf.Tensor, tf.Tensor, tf.Tensor];
}

/**
 * Training-mode batch norm over N, H, W of NHWC float32 x in one TensorFlow kernel, or undefined where that kernel is
 * not available (other backends, other dtypes): y = γ·(x − μ)/√(σ² + ε) + β with the batch's μ and biased σ².
 * Returns the batch mean and the biased batch variance (for the running statistics; TensorFlow returns the
 * Bessel-corrected one, undone here) and the reserve spaces the backward reads.
 */
export function fusedBatchNormTrain(
  x: tf.Tensor4D,
  scale: tf.Tensor1D,
  offset: tf.Tensor1D,
  epsilon: number,
): { y: tf.Tensor4D; mean: tf.Tensor1D; variance: tf.Tensor1D; saved: FusedBatchNormSaved } | undefined {
  if (!native() || x.dtype !== 'float32') return undefined;
  const [y, mean, unbiased, r1, r2, r3] = tf.engine().runKernel(BN_TRAIN, { x, scale, offset }, { epsilon } as never) as tf.Tensor[];
  const n = x.size / x.shape[3];
  const variance = n > 1 ? tf.mul(unbiased!, (n - 1) / n) : unbiased!.clone();
  unbiased!.dispose();
  return { y: y as tf.Tensor4D, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D, saved: { reserve: [r1!, r2!, r3!] } };
}

/** dx, dγ, dβ of fusedBatchNormTrain from dy (does not dispose `saved`). */
export function fusedBatchNormGrad(
  dy: tf.Tensor4D,
  x: tf.Tensor4D,
  scale: tf.Tensor1D,
  saved: FusedBatchNormSaved,
  epsilon: number,
): [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D] {
  const [r1, r2, r3] = saved.reserve;
  return tf.engine().runKernel(BN_GRAD, { dy, x, scale, r1, r2, r3 }, { epsilon } as never) as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D];
}

/** The explicit NHWC padding of a ZeroPadding2D layer's config (its `padding`: [[top, bottom], [left, right]]). */
export function explicitPadOf(cfg: Record<string, unknown>): ConvPad | undefined {
  if (cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast') return undefined;
  const p = cfg.padding as [[number, number], [number, number]] | undefined;
  if (!Array.isArray(p) || p.length !== 2 || !p.every((r) => Array.isArray(r) && r.length === 2)) return undefined;
  return [
    [0, 0],
    [p[0][0], p[0][1]],
    [p[1][0], p[1][1]],
    [0, 0],
  ];
}
