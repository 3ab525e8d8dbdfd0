/**
 * Backward kernels where tfjs-node runs more TensorFlow work than the math needs, for the executors' custom
 * gradients (inference.ts, trainOps.ts). On the native backend ('tensorflow': tfjs-node and tfjs-node-gpu) they
 * call TensorFlow's own kernel, registered as a tfjs kernel so the engine tracks the output like any other;
 * elsewhere (the pure-JS `cpu` backend of the tests) they run tfjs' ops, with the same values.
 *
 * - ReLU's backward dy·1[y > 0]: tfjs-node's `step` is six TensorFlow ops (IsNan, Greater, OnesLike, Fill and two
 *   Selects) over the whole activation, a third of a small CNN's input gradient; TensorFlow's ReluGrad is one pass.
 * - Convolution gradients with explicit padding: PyTorch pads a strided 3×3 convolution by 1 on every side, which
 *   TF's 'same' does not (it pads after only), so the models express it as ZeroPadding2D + 'valid' (a PadV2 over the
 *   activation forward and a Slice backward). Conv2D takes explicit paddings on tfjs-node, but its
 *   Conv2DBackpropInput / Conv2DBackpropFilter kernels refuse them; TensorFlow's own kernels accept them.
 */
import * as tf from '@tensorflow/tfjs';

/** 'same', 'valid', or NHWC explicit padding [[0, 0], [top, bottom], [left, right], [0, 0]]. */
export type ConvPad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

/** The part of tfjs-node's NodeJSKernelBackend these kernels use. */
interface NativeBackend {
  binding: Record<string, number>;
  executeSingleOutput(name: string, attrs: { name: string; type: number; value: unknown }[], inputs: tf.TensorInfo[]): tf.Tensor;
}

const NATIVE = 'tensorflow';
const RELU_GRAD = 'IklReluGrad';
const BACKPROP_INPUT = 'IklConv2DBackpropInput';
const BACKPROP_FILTER = 'IklConv2DBackpropFilter';

interface ConvAttrs {
  strides: [number, number];
  pad: ConvPad;
  /** inputShape (backprop input) or filterShape (backprop filter). */
  shape: number[];
}

/** TF's Conv2DBackprop* attributes for NHWC float32 with tfjs' pad convention. */
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

/** ∂L/∂x of an NHWC convolution (dilation 1) from ∂L/∂y. */
export function conv2dBackpropInput(dy: tf.Tensor4D, filter: tf.Tensor4D, inputShape: number[], strides: [number, number], pad: ConvPad): tf.Tensor4D {
  if (native()) return tf.engine().runKernel(BACKPROP_INPUT, { a: filter, b: dy }, { strides, pad, shape: inputShape } as never) as tf.Tensor4D;
  return tf.engine().runKernel('Conv2DBackpropInput', { dy, filter }, { strides, pad, dataFormat: 'NHWC', inputShape } as never) as tf.Tensor4D;
}

/** ∂L/∂W of an NHWC convolution (dilation 1) from its input and ∂L/∂y. */
export function conv2dBackpropFilter(x: tf.Tensor4D, dy: tf.Tensor4D, filterShape: number[], strides: [number, number], pad: ConvPad): tf.Tensor4D {
  if (native()) return tf.engine().runKernel(BACKPROP_FILTER, { a: x, b: dy }, { strides, pad, shape: filterShape } as never) as tf.Tensor4D;
  return tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides, pad, dataFormat: 'NHWC', filterShape } as never) as tf.Tensor4D;
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
