/**
 * The architectures of the zoo, written with built-in tfjs-layers only (functional API).
 *
 * Why no custom layers: a checkpoint's model.json must load with `tf.loadLayersModel` in a browser (or any tfjs
 * program) that has never imported this package. A custom layer class would have to be registered before loading,
 * so everything here (including the input normalisation of the Swish WRN and PyTorch's symmetric stride-2 padding)
 * is expressed with Conv2D, DepthwiseConv2D, ZeroPadding2D, BatchNormalization, Activation, Add,
 * GlobalAveragePooling2D and Dense.
 *
 * PyTorch equivalence (the references are PyTorch): BN momentum m_torch is Keras momentum 1 - m_torch, epsilon
 * 1e-5, convolutions without bias. PyTorch pads a 3×3 stride-2 convolution by 1 on every side, while TF's 'same'
 * pads (0, 1); the ReLU models reproduce PyTorch exactly with ZeroPadding2D(1) + 'valid'. The Swish WRN comes from
 * DeepMind's code, which pads (0, 1, 0, 1) by hand to mimic TF 'same', so there 'same' is the exact equivalent.
 *
 * Layers are created with zero initialisers; createModel overwrites every weight with seeded values (init.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { MDISTILLER_ARCH_DEFS } from './mdistiller.js';
import { normalizationLayer } from './normalization.js';
import { INPUT_SHAPE, MODEL_ARCHS, NORMALIZATION_LAYER, parseWrnArch, type ModelArch } from './types.js';

type MODEL_ARCHS_NAMED = typeof MODEL_ARCHS;

/** CIFAR input statistics used by the Swish WRN's built-in normalisation (DeepMind / Wang et al. 2023 code). */
export const CIFAR10_MEAN = [0.4914, 0.4822, 0.4465] as const;
export const CIFAR10_STD = [0.2471, 0.2435, 0.2616] as const;
export const CIFAR100_MEAN = [0.5071, 0.4865, 0.4409] as const;
export const CIFAR100_STD = [0.2673, 0.2564, 0.2762] as const;

/** Input statistics for a head of numClasses classes: CIFAR-100 for 100 classes, CIFAR-10 otherwise. */
export function normalizationStats(numClasses: number): { mean: readonly number[]; std: readonly number[] } {
  return numClasses === 100 ? { mean: CIFAR100_MEAN, std: CIFAR100_STD } : { mean: CIFAR10_MEAN, std: CIFAR10_STD };
}

// Defined in types.ts so that mdistiller.ts can use them without an import cycle through this file.
export { INPUT_SHAPE, NORMALIZATION_LAYER };

/** How the reference initialises each architecture (applied by init.ts). */
export interface InitScheme {
  /** WRN references: normal(0, sqrt(2 / (k·k·outChannels))); others keep PyTorch's default U(±1/sqrt(fanIn)). */
  conv: 'kaiming-normal-fan-out' | 'torch-default';
  /** WRN references zero the linear bias; PyTorch's default is U(±1/sqrt(fanIn)). */
  linearBias: 'zeros' | 'torch-default';
  /** mdistiller's VGG and MobileNetV2 draw the linear weight from N(0, 0.01²); default U(±1/sqrt(fanIn)). */
  linearKernel?: 'normal-0.01' | 'torch-default';
  /** Statistics of the input normalisation layer; default by class count (normalizationStats). */
  normalization?: { mean: readonly number[]; std: readonly number[] };
}

interface Style {
  activation: 'relu' | 'swish';
  /** Keras convention: running = momentum·running + (1 - momentum)·batch. */
  bnMomentum: number;
  /** 'torch': symmetric padding for strided 3×3 convolutions; 'tf-same': TF 'same' (pad after only). */
  padding: 'torch' | 'tf-same';
}

type T = tf.SymbolicTensor;
const apply = (layer: tf.layers.Layer, x: T | T[]): T => layer.apply(x) as T;

/** Small helpers sharing one style; every layer gets an explicit, stable name (weight names derive from it). */
class Net {
  constructor(readonly style: Style) {}

  conv(x: T, filters: number, kernelSize: number, strides: number, name: string): T {
    let padding: 'same' | 'valid' = kernelSize > 1 ? 'same' : 'valid';
    if (kernelSize > 1 && strides > 1 && this.style.padding === 'torch') {
      x = apply(tf.layers.zeroPadding2d({ padding: (kernelSize - 1) / 2, name: `${name}_pad` }), x);
      padding = 'valid';
    }
    return apply(tf.layers.conv2d({ filters, kernelSize, strides, padding, useBias: false, kernelInitializer: 'zeros', name }), x);
  }

  bn(x: T, name: string): T {
    return apply(
      tf.layers.batchNormalization({
        axis: -1,
        momentum: this.style.bnMomentum,
        epsilon: 1e-5,
        gammaInitializer: 'ones',
        betaInitializer: 'zeros',
        movingMeanInitializer: 'zeros',
        movingVarianceInitializer: 'ones',
        name,
      }),
      x,
    );
  }

  act(x: T, name: string): T {
    return apply(tf.layers.activation({ activation: this.style.activation, name }), x);
  }

  add(a: T, b: T, name: string): T {
    return apply(tf.layers.add({ name }), [a, b]);
  }

  head(x: T, numClasses: number): T {
    const pooled = apply(tf.layers.globalAveragePooling2d({ name: 'pool' }), x);
    return apply(tf.layers.dense({ units: numClasses, useBias: true, kernelInitializer: 'zeros', biasInitializer: 'zeros', name: 'fc' }), pooled);
  }

  /** (x - mean) / std per channel as a frozen 1×1 depthwise convolution (kernel 1/std, bias -mean/std). */
  normalize(x: T): T {
    return apply(normalizationLayer(), x);
  }
}

/**
 * Pre-activation WRN basic block (TRADES/AWP `BasicBlock`, DeepMind `_Block`): BN-act, conv3×3(stride), BN-act,
 * conv3×3. When the width changes, the 1×1 shortcut convolution reads the *activated* input, as both references do.
 */
function wrnBlock(net: Net, x: T, inC: number, outC: number, stride: number, name: string): T {
  const a = net.act(net.bn(x, `${name}_bn1`), `${name}_act1`);
  let out = net.conv(a, outC, 3, stride, `${name}_conv1`);
  out = net.act(net.bn(out, `${name}_bn2`), `${name}_act2`);
  out = net.conv(out, outC, 3, 1, `${name}_conv2`);
  const shortcut = inC === outC ? x : net.conv(a, outC, 1, stride, `${name}_shortcut`);
  return net.add(shortcut, out, `${name}_add`);
}

function wideResNet(depth: number, widen: number, numClasses: number, style: Style, normalize: boolean, name: string): tf.LayersModel {
  const n = (depth - 4) / 6;
  const widths = [16, 16 * widen, 32 * widen, 64 * widen];
  const net = new Net(style);
  const input = tf.input({ shape: [...INPUT_SHAPE], name: 'input' });
  let x = normalize ? net.normalize(input) : input;
  x = net.conv(x, widths[0]!, 3, 1, 'conv1');
  for (let g = 0; g < 3; g++) {
    for (let i = 0; i < n; i++) {
      const inC = i === 0 ? widths[g]! : widths[g + 1]!;
      const stride = i === 0 && g > 0 ? 2 : 1;
      x = wrnBlock(net, x, inC, widths[g + 1]!, stride, `block${g + 1}_${i}`);
    }
  }
  x = net.act(net.bn(x, 'bn_final'), 'act_final');
  return tf.model({ inputs: input, outputs: net.head(x, numClasses), name });
}

/** PreActResNet-18 as in Rice et al. / AWP: pre-activation blocks, final BN-ReLU before pooling. */
function preActResNet18(numClasses: number, width = 64, normalize = false): tf.LayersModel {
  const net = new Net({ activation: 'relu', bnMomentum: 0.9, padding: 'torch' });
  const input = tf.input({ shape: [...INPUT_SHAPE], name: 'input' });
  let x = net.conv(normalize ? net.normalize(input) : input, width, 3, 1, 'conv1');
  let inC = width;
  [width, 2 * width, 4 * width, 8 * width].forEach((outC, s) => {
    for (let i = 0; i < 2; i++) {
      const stride = i === 0 && s > 0 ? 2 : 1;
      const name = `layer${s + 1}_${i}`;
      const a = net.act(net.bn(x, `${name}_bn1`), `${name}_act1`);
      const shortcut = stride !== 1 || inC !== outC ? net.conv(a, outC, 1, stride, `${name}_shortcut`) : x;
      let out = net.conv(a, outC, 3, stride, `${name}_conv1`);
      out = net.act(net.bn(out, `${name}_bn2`), `${name}_act2`);
      out = net.conv(out, outC, 3, 1, `${name}_conv2`);
      x = net.add(out, shortcut, `${name}_add`);
      inC = outC;
    }
  });
  x = net.act(net.bn(x, 'bn_final'), 'act_final');
  return tf.model({ inputs: input, outputs: net.head(x, numClasses), name: 'preact_resnet18' });
}

/**
 * DeepMind's PreActResNet-18 (RobustBench `DMPreActResNet`, Rebuffi et al. 2021): Swish, input normalisation
 * inside, TF-'same' padding, and unlike Rice et al.'s a 3×3 shortcut convolution reading the block's *input*
 * (not its activation). Layers are named by PyTorch module path (`layer_1.0.conv_2d_1`): no mapping table.
 */
function dmPreActResNet18(numClasses: number, width = 64): tf.LayersModel {
  const net = new Net(DM_SWISH_STYLE);
  const input = tf.input({ shape: [...INPUT_SHAPE], name: 'input' });
  let x = net.conv(net.normalize(input), width, 3, 1, 'conv_2d');
  let inC = width;
  [width, 2 * width, 4 * width, 8 * width].forEach((outC, s) => {
    for (let i = 0; i < 2; i++) {
      const stride = i === 0 && s > 0 ? 2 : 1;
      const name = `layer_${s}.${i}`;
      const a = net.act(net.bn(x, `${name}.batchnorm_0`), `${name}.relu_0`);
      const shortcut = stride !== 1 || inC !== outC ? net.conv(x, outC, 3, stride, `${name}.shortcut`) : x;
      let out = net.conv(a, outC, 3, stride, `${name}.conv_2d_1`);
      out = net.act(net.bn(out, `${name}.batchnorm_1`), `${name}.relu_1`);
      out = net.conv(out, outC, 3, 1, `${name}.conv_2d_2`);
      x = net.add(out, shortcut, `${name}.add`);
      inC = outC;
    }
  });
  x = net.act(net.bn(x, 'batchnorm'), 'relu');
  const pooled = apply(tf.layers.globalAveragePooling2d({ name: 'pool' }), x);
  const logits = apply(tf.layers.dense({ units: numClasses, useBias: true, kernelInitializer: 'zeros', biasInitializer: 'zeros', name: 'logits' }), pooled);
  return tf.model({ inputs: input, outputs: logits, name: 'dm_preact_resnet18' });
}

/** ResNet-18, CIFAR variant of Madry/TRADES: 3×3 stem, no max-pool, post-activation blocks, BN on the shortcut. */
function resNet18(numClasses: number, width = 64, normalize = false): tf.LayersModel {
  const net = new Net({ activation: 'relu', bnMomentum: 0.9, padding: 'torch' });
  const input = tf.input({ shape: [...INPUT_SHAPE], name: 'input' });
  let x = net.act(net.bn(net.conv(normalize ? net.normalize(input) : input, width, 3, 1, 'conv1'), 'bn1'), 'act1');
  let inC = width;
  [width, 2 * width, 4 * width, 8 * width].forEach((outC, s) => {
    for (let i = 0; i < 2; i++) {
      const stride = i === 0 && s > 0 ? 2 : 1;
      const name = `layer${s + 1}_${i}`;
      let out = net.act(net.bn(net.conv(x, outC, 3, stride, `${name}_conv1`), `${name}_bn1`), `${name}_act1`);
      out = net.bn(net.conv(out, outC, 3, 1, `${name}_conv2`), `${name}_bn2`);
      const shortcut = stride !== 1 || inC !== outC ? net.bn(net.conv(x, outC, 1, stride, `${name}_shortcut`), `${name}_shortcut_bn`) : x;
      x = net.act(net.add(out, shortcut, `${name}_add`), `${name}_act2`);
      inC = outC;
    }
  });
  return tf.model({ inputs: input, outputs: net.head(x, numClasses), name: 'resnet18' });
}

/** A small CNN for tests: three conv-BN-ReLU stages (16, 32, 64 channels; strides 1, 2, 2), pooling, linear. */
function smallCnn(numClasses: number): tf.LayersModel {
  const net = new Net({ activation: 'relu', bnMomentum: 0.9, padding: 'torch' });
  const input = tf.input({ shape: [...INPUT_SHAPE], name: 'input' });
  let x: T = input;
  [16, 32, 64].forEach((filters, i) => {
    x = net.conv(x, filters, 3, i === 0 ? 1 : 2, `conv${i + 1}`);
    x = net.act(net.bn(x, `bn${i + 1}`), `act${i + 1}`);
  });
  return tf.model({ inputs: input, outputs: net.head(x, numClasses), name: 'small_cnn' });
}

const TRADES_STYLE: Style = { activation: 'relu', bnMomentum: 0.9, padding: 'torch' };
// DeepMind's WRN (used with generated data): Swish, BN momentum 0.01 in PyTorch terms, TF-style padding.
const DM_SWISH_STYLE: Style = { activation: 'swish', bnMomentum: 0.99, padding: 'tf-same' };

const WRN_INIT: InitScheme = { conv: 'kaiming-normal-fan-out', linearBias: 'zeros' };
const TORCH_INIT: InitScheme = { conv: 'torch-default', linearBias: 'torch-default' };

export interface ArchDef {
  build: (numClasses: number) => tf.LayersModel;
  init: InitScheme;
}

/** A WRN of either family at any depth and width (the named WRNs are members). */
function wrnDef(depth: number, widen: number, family: 'trades-wrn' | 'dm-wrn'): ArchDef {
  const swish = family === 'dm-wrn';
  const name = `wrn_${depth}_${widen}${swish ? '_swish' : ''}`;
  return { build: (c) => wideResNet(depth, widen, c, swish ? DM_SWISH_STYLE : TRADES_STYLE, swish, name), init: WRN_INIT };
}

export const ARCH_DEFS: Record<MODEL_ARCHS_NAMED[number], ArchDef> = {
  'wrn-34-10': wrnDef(34, 10, 'trades-wrn'),
  'wrn-28-10': wrnDef(28, 10, 'trades-wrn'),
  'wrn-28-10-swish': wrnDef(28, 10, 'dm-wrn'),
  'preact-resnet-18': { build: preActResNet18, init: TORCH_INIT },
  'dm-preact-resnet-18': { build: dmPreActResNet18, init: TORCH_INIT },
  'resnet-18': { build: resNet18, init: TORCH_INIT },
  'small-cnn': { build: smallCnn, init: TORCH_INIT },
  ...MDISTILLER_ARCH_DEFS,
};

/** The definition of any architecture of the zoo (named, or a parametric WRN such as wrn-70-16-swish). */
export function archDef(arch: ModelArch): ArchDef {
  const named = (ARCH_DEFS as Record<string, ArchDef>)[arch];
  if (named) return named;
  const wrn = parseWrnArch(arch);
  if (!wrn) throw new Error(`archDef: '${arch}' is not an architecture of the zoo`);
  return wrnDef(wrn.depth, wrn.widen, wrn.family);
}

/**
 * The architecture with the input normalisation layer in front, for published models whose module normalises
 * inside (RobustBench's `Rice2020OverfittingNet`: `(x - mu) / sigma` before a plain WideResNet). The Swish WRN has
 * it already. Its statistics are written by the caller (`setNormalization`).
 */
export function buildNormalized(arch: ModelArch, numClasses: number): tf.LayersModel {
  const wrn = parseWrnArch(arch);
  if (wrn?.family === 'dm-wrn' || arch === 'dm-preact-resnet-18') return archDef(arch).build(numClasses);
  if (wrn) return wideResNet(wrn.depth, wrn.widen, numClasses, TRADES_STYLE, true, `wrn_${wrn.depth}_${wrn.widen}`);
  if (arch === 'preact-resnet-18') return preActResNet18(numClasses, 64, true);
  if (arch === 'resnet-18') return resNet18(numClasses, 64, true);
  throw new Error(`buildNormalized: ${arch} has no variant with input normalisation`);
}

/** Writes (x − mean)/std into the model's input normalisation layer (kernel 1/std, bias −mean/std). */
export function setNormalization(model: tf.LayersModel, mean: readonly number[], std: readonly number[]): void {
  const norm = model.layers.find((l) => l.name === NORMALIZATION_LAYER);
  if (!norm) throw new Error(`setNormalization: ${model.name} has no ${NORMALIZATION_LAYER} layer`);
  tf.tidy(() =>
    norm.setWeights([
      tf.tensor4d(
        std.map((s) => 1 / s),
        [1, 1, 3, 1],
      ),
      tf.tensor1d(mean.map((m, i) => -m / std[i]!)),
    ]),
  );
}

/**
 * Reduced-size members of the zoo's families (same layer names, structure and style as the full architectures),
 * for the PyTorch interop tests: the fixtures hold small networks with the official key pattern.
 */
export const REDUCED_BUILDERS = {
  'trades-wrn': (depth: number, widen: number, c: number) => wideResNet(depth, widen, c, TRADES_STYLE, false, 'wrn'),
  'dm-wrn': (depth: number, widen: number, c: number) => wideResNet(depth, widen, c, DM_SWISH_STYLE, true, 'wrn_swish'),
  'preact-resnet': (width: number, c: number, normalize = false) => preActResNet18(c, width, normalize),
  resnet: (width: number, c: number, normalize = false) => resNet18(c, width, normalize),
  'dm-preact-resnet': (width: number, c: number) => dmPreActResNet18(c, width),
  'trades-wrn-normalized': (depth: number, widen: number, c: number) => wideResNet(depth, widen, c, TRADES_STYLE, true, 'wrn'),
} as const;
