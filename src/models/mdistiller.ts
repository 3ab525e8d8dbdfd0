/**
 * The CIFAR-100 zoo of the mdistiller KD benchmark (megvii-research/mdistiller `models/cifar/`, also in DKL's
 * DKLv1/KD-dkl), one parametric builder per family, built-in tfjs layers only (a browser loads them; see archs.ts).
 *
 * Naming convention shared with the PyTorch importer: every layer that holds weights is named after the PyTorch
 * module path of mdistiller's code (`layer1.0.conv1`, `layer1.0.downsample.1`, `blocks.2.0.conv.3`, `fc`), so
 * "layer name = torch module path" loads mdistiller's released checkpoints. Two PyTorch modules have no single
 * built-in tfjs equivalent:
 * - a depthwise convolution (groups = channels) is a DepthwiseConv2D of the same name (weight [C,1,kh,kw] ↔ [kh,kw,C,1]);
 * - a grouped 1×1 convolution (ShuffleV1, groups = 3) is one Conv2D per group, named `<path>.g0`, `<path>.g1`, …,
 *   on the channel slices of its input, concatenated: group k holds rows k·out/g … (k+1)·out/g − 1 of the
 *   PyTorch weight [out, in/g, 1, 1].
 * Parameter-free layers (ReLU, add, pooling, reshape) get names `<scope>.<op>_<n>`; they hold nothing to import.
 *
 * PyTorch equivalence as in archs.ts: BN momentum 0.1 (Keras 0.9), eps 1e-5; a stride-2 k×k convolution with
 * padding (k−1)/2 is ZeroPadding2D + 'valid'; AvgPool2d(3, 2, padding=1) counts the padding (count_include_pad),
 * like ZeroPadding2D + AveragePooling2D. The final fixed-size pools of the reference (AvgPool2d(8), avg_pool2d(4),
 * AdaptiveAvgPool2d(1)) all cover the whole last map at 32×32 input: GlobalAveragePooling2D.
 * Inputs are in [0, 1]; the model first applies the Normalize of mdistiller's CIFAR-100 loader
 * (dataset/cifar100.py), whose statistics differ slightly from CIFAR100_MEAN/STD.
 */
import * as tf from '@tensorflow/tfjs';
import type { InitScheme } from './archs.js';
import { normalizationLayer } from './normalization.js';
import { INPUT_SHAPE, type MdistillerArch } from './types.js';

/** transforms.Normalize of mdistiller/dataset/cifar100.py. */
export const MDISTILLER_CIFAR100_MEAN = [0.5071, 0.4867, 0.4408] as const;
export const MDISTILLER_CIFAR100_STD = [0.2675, 0.2565, 0.2761] as const;

type T = tf.SymbolicTensor;
const apply = (layer: tf.layers.Layer, x: T | T[]): T => layer.apply(x) as T;
const channels = (x: T): number => x.shape[3]!;

interface ConvOptions {
  stride?: number;
  /** PyTorch `groups`: 1, the channel count (depthwise) or a divisor of both channel counts (grouped). */
  groups?: number;
  bias?: boolean;
}

/** Layers with PyTorch semantics, named after PyTorch module paths. */
class TorchLayers {
  private count = 0;

  private anon(scope: string, op: string): string {
    return `${scope}.${op}_${this.count++}`;
  }

  conv(x: T, path: string, filters: number, kernelSize: number, opts: ConvOptions = {}): T {
    const { stride = 1, groups = 1, bias = false } = opts;
    const inC = channels(x);
    let padding: 'same' | 'valid' = kernelSize > 1 ? 'same' : 'valid';
    if (kernelSize > 1 && stride > 1) {
      x = apply(tf.layers.zeroPadding2d({ padding: (kernelSize - 1) / 2, name: this.anon(path, 'pad') }), x);
      padding = 'valid';
    }
    const common = { kernelSize, strides: stride, padding, useBias: bias, biasInitializer: 'zeros' as const };
    if (groups === 1) {
      return apply(tf.layers.conv2d({ ...common, filters, kernelInitializer: 'zeros', name: path }), x);
    }
    if (groups === inC && filters === inC) {
      return apply(tf.layers.depthwiseConv2d({ ...common, depthMultiplier: 1, depthwiseInitializer: 'zeros', name: path }), x);
    }
    if (inC % groups !== 0 || filters % groups !== 0) throw new Error(`mdistiller: ${path}: groups ${groups} must divide ${inC} and ${filters}`);
    const parts = this.splitChannels(x, groups, path).map((part, k) =>
      apply(tf.layers.conv2d({ ...common, filters: filters / groups, kernelInitializer: 'zeros', name: `${path}.g${k}` }), part),
    );
    return this.concat(parts, path);
  }

  bn(x: T, path: string): T {
    return apply(
      tf.layers.batchNormalization({
        axis: -1,
        momentum: 0.9,
        epsilon: 1e-5,
        gammaInitializer: 'ones',
        betaInitializer: 'zeros',
        movingMeanInitializer: 'zeros',
        movingVarianceInitializer: 'ones',
        name: path,
      }),
      x,
    );
  }

  relu(x: T, scope: string): T {
    return apply(tf.layers.activation({ activation: 'relu', name: this.anon(scope, 'relu') }), x);
  }

  add(a: T, b: T, scope: string): T {
    return apply(tf.layers.add({ name: this.anon(scope, 'add') }), [a, b]);
  }

  concat(xs: T[], scope: string): T {
    return apply(tf.layers.concatenate({ axis: -1, name: this.anon(scope, 'cat') }), xs);
  }

  /**
   * The g equal channel slices of x, in order. There is no slicing layer among the built-ins: the channels are
   * reshaped to a g × C/g grid and each row cut out with Cropping2D.
   */
  splitChannels(x: T, groups: number, scope: string): T[] {
    const [h, w, c] = x.shape.slice(1) as [number, number, number];
    const grid = apply(tf.layers.reshape({ targetShape: [h * w, groups, c / groups], name: this.anon(scope, 'grid') }), x);
    return Array.from({ length: groups }, (_, k) => {
      const row = apply(
        tf.layers.cropping2D({
          cropping: [
            [0, 0],
            [k, groups - 1 - k],
          ],
          name: this.anon(scope, `slice${k}`),
        }),
        grid,
      );
      return apply(tf.layers.reshape({ targetShape: [h, w, c / groups], name: this.anon(scope, `unslice${k}`) }), row);
    });
  }

  /** ShuffleNet's channel shuffle: channel k·(C/g) + j moves to j·g + k ([N,g,C/g,H,W] → [N,C/g,g,H,W]). */
  shuffle(x: T, groups: number, scope: string): T {
    const [h, w, c] = x.shape.slice(1) as [number, number, number];
    let y = apply(tf.layers.reshape({ targetShape: [h, w, groups, c / groups], name: this.anon(scope, 'grid') }), x);
    y = apply(tf.layers.permute({ dims: [1, 2, 4, 3], name: this.anon(scope, 'shuffle') }), y);
    return apply(tf.layers.reshape({ targetShape: [h, w, c], name: this.anon(scope, 'flat') }), y);
  }

  maxPool(x: T, scope: string): T {
    return apply(tf.layers.maxPooling2d({ poolSize: 2, strides: 2, name: this.anon(scope, 'maxpool') }), x);
  }

  /** nn.AvgPool2d(3, stride=2, padding=1): zero padding counted in the mean. */
  avgPool3x3s2(x: T, scope: string): T {
    const padded = apply(tf.layers.zeroPadding2d({ padding: 1, name: this.anon(scope, 'pad') }), x);
    return apply(tf.layers.averagePooling2d({ poolSize: 3, strides: 2, padding: 'valid', name: this.anon(scope, 'avgpool') }), padded);
  }

  /** Global average pooling, then the linear classifier named `path`. */
  head(x: T, numClasses: number, path: string): T {
    const pooled = apply(tf.layers.globalAveragePooling2d({ name: 'avgpool' }), x);
    return apply(tf.layers.dense({ units: numClasses, kernelInitializer: 'zeros', biasInitializer: 'zeros', name: path }), pooled);
  }

  /** (x − mean)/std of mdistiller's loader as a frozen 1×1 depthwise convolution (values written by init.ts). */
  input(): { input: T; x: T } {
    const input = tf.input({ shape: [...INPUT_SHAPE], name: 'input' });
    const x = apply(normalizationLayer(), input);
    return { input, x };
  }
}

/** models/cifar/resnet.py `ResNet(depth, num_filters, 'basicblock')`: post-activation basic blocks, 3 stages. */
export function cifarResNet(depth: number, filters: readonly [number, number, number, number], numClasses: number, name: string): tf.LayersModel {
  if ((depth - 2) % 6 !== 0) throw new Error(`cifarResNet: depth must be 6n + 2, got ${depth}`);
  const n = (depth - 2) / 6;
  const L = new TorchLayers();
  const { input, x: x0 } = L.input();
  let x = L.relu(L.bn(L.conv(x0, 'conv1', filters[0], 3), 'bn1'), 'stem');
  let inplanes = filters[0];
  for (let s = 0; s < 3; s++) {
    const planes = filters[s + 1]!;
    for (let i = 0; i < n; i++) {
      const p = `layer${s + 1}.${i}`;
      const stride = i === 0 && s > 0 ? 2 : 1;
      let out = L.relu(L.bn(L.conv(x, `${p}.conv1`, planes, 3, { stride }), `${p}.bn1`), p);
      out = L.bn(L.conv(out, `${p}.conv2`, planes, 3), `${p}.bn2`);
      const residual = stride !== 1 || inplanes !== planes ? L.bn(L.conv(x, `${p}.downsample.0`, planes, 1, { stride }), `${p}.downsample.1`) : x;
      x = L.relu(L.add(out, residual, p), p);
      inplanes = planes;
    }
  }
  return tf.model({ inputs: input, outputs: L.head(x, numClasses, 'fc'), name });
}

/** models/cifar/resnetv2.py `ResNet(block, num_blocks)`: the ImageNet ResNet layout with a 3×3 stem, 4 stages. */
export function resNetV2(
  block: 'basic' | 'bottleneck',
  numBlocks: readonly [number, number, number, number],
  numClasses: number,
  name: string,
): tf.LayersModel {
  const expansion = block === 'bottleneck' ? 4 : 1;
  const L = new TorchLayers();
  const { input, x: x0 } = L.input();
  let x = L.relu(L.bn(L.conv(x0, 'conv1', 64, 3), 'bn1'), 'stem');
  let inPlanes = 64;
  [64, 128, 256, 512].forEach((planes, s) => {
    for (let i = 0; i < numBlocks[s]!; i++) {
      const p = `layer${s + 1}.${i}`;
      const stride = i === 0 && s > 0 ? 2 : 1;
      let out: T;
      if (block === 'bottleneck') {
        out = L.relu(L.bn(L.conv(x, `${p}.conv1`, planes, 1), `${p}.bn1`), p);
        out = L.relu(L.bn(L.conv(out, `${p}.conv2`, planes, 3, { stride }), `${p}.bn2`), p);
        out = L.bn(L.conv(out, `${p}.conv3`, planes * expansion, 1), `${p}.bn3`);
      } else {
        out = L.relu(L.bn(L.conv(x, `${p}.conv1`, planes, 3, { stride }), `${p}.bn1`), p);
        out = L.bn(L.conv(out, `${p}.conv2`, planes, 3), `${p}.bn2`);
      }
      const shortcut =
        stride !== 1 || inPlanes !== planes * expansion ? L.bn(L.conv(x, `${p}.shortcut.0`, planes * expansion, 1, { stride }), `${p}.shortcut.1`) : x;
      x = L.relu(L.add(out, shortcut, p), p);
      inPlanes = planes * expansion;
    }
  });
  return tf.model({ inputs: input, outputs: L.head(x, numClasses, 'linear'), name });
}

/** models/cifar/wrn.py `WideResNet(depth, widen_factor)`: pre-activation blocks; the 1×1 shortcut reads the activated input. */
export function wideResNet(depth: number, widen: number, numClasses: number, name: string): tf.LayersModel {
  if ((depth - 4) % 6 !== 0) throw new Error(`wideResNet: depth must be 6n + 4, got ${depth}`);
  const n = (depth - 4) / 6;
  const widths = [16, 16 * widen, 32 * widen, 64 * widen];
  const L = new TorchLayers();
  const { input, x: x0 } = L.input();
  let x = L.conv(x0, 'conv1', widths[0]!, 3);
  for (let g = 1; g <= 3; g++) {
    for (let i = 0; i < n; i++) {
      const p = `block${g}.layer.${i}`;
      const inC = i === 0 ? widths[g - 1]! : widths[g]!;
      const outC = widths[g]!;
      const stride = i === 0 && g > 1 ? 2 : 1;
      const a = L.relu(L.bn(x, `${p}.bn1`), p);
      let out = L.relu(L.bn(L.conv(a, `${p}.conv1`, outC, 3, { stride }), `${p}.bn2`), p);
      out = L.conv(out, `${p}.conv2`, outC, 3);
      x = L.add(inC === outC ? x : L.conv(a, `${p}.convShortcut`, outC, 1, { stride }), out, p);
    }
  }
  x = L.relu(L.bn(x, 'bn1'), 'final');
  return tf.model({ inputs: input, outputs: L.head(x, numClasses, 'fc'), name });
}

/**
 * models/cifar/vgg.py `VGG(cfg, batch_norm=True)`: five blocks of conv(bias)-BN-ReLU, max-pools after the first
 * three (the fourth pool only runs on 64×64 inputs), global pooling, `classifier`. Inside block b the Sequential
 * indices are conv 3j, BN 3j + 1 (its last ReLU is dropped and applied by forward instead).
 */
export function vgg(cfg: readonly (readonly number[])[], numClasses: number, name: string): tf.LayersModel {
  const L = new TorchLayers();
  const { input, x: x0 } = L.input();
  let x = x0;
  cfg.forEach((widths, b) => {
    widths.forEach((v, j) => {
      x = L.bn(L.conv(x, `block${b}.${3 * j}`, v, 3, { bias: true }), `block${b}.${3 * j + 1}`);
      x = L.relu(x, `block${b}`);
    });
    if (b < 3) x = L.maxPool(x, `pool${b}`);
  });
  return tf.model({ inputs: input, outputs: L.head(x, numClasses, 'classifier'), name });
}

/** models/cifar/mobilenetv2.py `MobileNetV2(T, feature_dim, width_mult)` (mdistiller's `mobile_half` is T = 6, width 0.5). */
export function mobileNetV2(expansion: number, widthMult: number, numClasses: number, name: string): tf.LayersModel {
  const settings: Array<[number, number, number, number]> = [
    [1, 16, 1, 1],
    [expansion, 24, 2, 1],
    [expansion, 32, 3, 2],
    [expansion, 64, 4, 2],
    [expansion, 96, 3, 1],
    [expansion, 160, 3, 2],
    [expansion, 320, 1, 1],
  ];
  const L = new TorchLayers();
  const { input, x: x0 } = L.input();
  let inC = Math.trunc(32 * widthMult);
  let x = L.relu(L.bn(L.conv(x0, 'conv1.0', inC, 3, { stride: 2 }), 'conv1.1'), 'conv1');
  settings.forEach(([t, c, n, s], b) => {
    const outC = Math.trunc(c * widthMult);
    for (let i = 0; i < n; i++) {
      const p = `blocks.${b}.${i}.conv`;
      const stride = i === 0 ? s : 1;
      const hidden = inC * t;
      let y = L.relu(L.bn(L.conv(x, `${p}.0`, hidden, 1), `${p}.1`), p);
      y = L.relu(L.bn(L.conv(y, `${p}.3`, hidden, 3, { stride, groups: hidden }), `${p}.4`), p);
      y = L.bn(L.conv(y, `${p}.6`, outC, 1), `${p}.7`);
      x = stride === 1 && inC === outC ? L.add(x, y, p) : y;
      inC = outC;
    }
  });
  const last = widthMult > 1 ? Math.trunc(1280 * widthMult) : 1280;
  x = L.relu(L.bn(L.conv(x, 'conv2.0', last, 1), 'conv2.1'), 'conv2');
  return tf.model({ inputs: input, outputs: L.head(x, numClasses, 'classifier.0'), name });
}

/** models/cifar/ShuffleNetv1.py `ShuffleNet(cfg)`: grouped 1×1 convs, channel shuffle, concat-pool downsampling. */
export function shuffleNetV1(outPlanes: readonly number[], numBlocks: readonly number[], groups: number, numClasses: number, name: string): tf.LayersModel {
  const L = new TorchLayers();
  const { input, x: x0 } = L.input();
  let x = L.relu(L.bn(L.conv(x0, 'conv1', 24, 1), 'bn1'), 'stem');
  let inPlanes = 24;
  outPlanes.forEach((planes, s) => {
    for (let i = 0; i < numBlocks[s]!; i++) {
      const p = `layer${s + 1}.${i}`;
      const stride = i === 0 ? 2 : 1;
      const out = planes - (i === 0 ? inPlanes : 0);
      const mid = Math.trunc(out / 4);
      const g = inPlanes === 24 ? 1 : groups; // the reference does not group the first 1×1 conv after the stem
      let y = L.relu(L.bn(L.conv(x, `${p}.conv1`, mid, 1, { groups: g }), `${p}.bn1`), p);
      if (g > 1) y = L.shuffle(y, g, p);
      y = L.relu(L.bn(L.conv(y, `${p}.conv2`, mid, 3, { stride, groups: mid }), `${p}.bn2`), p);
      y = L.bn(L.conv(y, `${p}.conv3`, out, 1, { groups }), `${p}.bn3`);
      x = L.relu(stride === 2 ? L.concat([y, L.avgPool3x3s2(x, p)], p) : L.add(y, x, p), p);
      inPlanes = planes;
    }
  });
  return tf.model({ inputs: input, outputs: L.head(x, numClasses, 'linear'), name });
}

/** models/cifar/ShuffleNetv2.py `ShuffleNetV2(net_size)`: a DownBlock then split/transform/concat/shuffle blocks. */
export function shuffleNetV2(
  outChannels: readonly [number, number, number, number],
  numBlocks: readonly number[],
  numClasses: number,
  name: string,
): tf.LayersModel {
  const L = new TorchLayers();
  const { input, x: x0 } = L.input();
  let x = L.relu(L.bn(L.conv(x0, 'conv1', 24, 1), 'bn1'), 'stem');
  let inC = 24;
  for (let s = 0; s < 3; s++) {
    const outC = outChannels[s]!;
    const mid = Math.trunc(outC / 2);
    const d = `layer${s + 1}.0`;
    let left = L.bn(L.conv(x, `${d}.conv1`, inC, 3, { stride: 2, groups: inC }), `${d}.bn1`);
    left = L.relu(L.bn(L.conv(left, `${d}.conv2`, mid, 1), `${d}.bn2`), d);
    let right = L.relu(L.bn(L.conv(x, `${d}.conv3`, mid, 1), `${d}.bn3`), d);
    right = L.bn(L.conv(right, `${d}.conv4`, mid, 3, { stride: 2, groups: mid }), `${d}.bn4`);
    right = L.relu(L.bn(L.conv(right, `${d}.conv5`, mid, 1), `${d}.bn5`), d);
    x = L.shuffle(L.concat([left, right], d), 2, d);
    for (let i = 1; i <= numBlocks[s]!; i++) {
      const p = `layer${s + 1}.${i}`;
      const c = Math.trunc(outC / 2);
      const [x1, x2] = L.splitChannels(x, 2, p) as [T, T];
      let y = L.relu(L.bn(L.conv(x2, `${p}.conv1`, c, 1), `${p}.bn1`), p);
      y = L.bn(L.conv(y, `${p}.conv2`, c, 3, { groups: c }), `${p}.bn2`);
      y = L.relu(L.bn(L.conv(y, `${p}.conv3`, c, 1), `${p}.bn3`), p);
      x = L.shuffle(L.concat([x1, y], p), 2, p);
    }
    inC = outC;
  }
  x = L.relu(L.bn(L.conv(x, 'conv2', outChannels[3], 1), 'bn2'), 'final');
  return tf.model({ inputs: input, outputs: L.head(x, numClasses, 'linear'), name });
}

const normalization = { mean: MDISTILLER_CIFAR100_MEAN, std: MDISTILLER_CIFAR100_STD };
/** resnet.py, resnetv2.py: kaiming_normal(fan_out) convs, PyTorch-default linear. */
const KAIMING_INIT: InitScheme = { conv: 'kaiming-normal-fan-out', linearBias: 'torch-default', normalization };
/** wrn.py: normal(0, sqrt(2/(k·k·out))) convs (the same), linear bias zeroed. */
const WRN_INIT: InitScheme = { conv: 'kaiming-normal-fan-out', linearBias: 'zeros', normalization };
/** vgg.py, mobilenetv2.py: as WRN, conv bias zeroed, linear weight N(0, 0.01²). */
const VGG_INIT: InitScheme = { conv: 'kaiming-normal-fan-out', linearBias: 'zeros', linearKernel: 'normal-0.01', normalization };
/** ShuffleNetv1/v2.py: no explicit initialisation (PyTorch defaults). */
const TORCH_INIT: InitScheme = { conv: 'torch-default', linearBias: 'torch-default', normalization };

const R = [16, 16, 32, 64] as const;
const R4 = [32, 64, 128, 256] as const;
const VGG8 = [[64], [128], [256], [512], [512]];
const VGG13 = [
  [64, 64],
  [128, 128],
  [256, 256],
  [512, 512],
  [512, 512],
];

/** Registry entries, named as mdistiller's `cifar_model_dict` (vgg8/vgg13 are its `vgg8_bn`/`vgg13_bn`). */
export const MDISTILLER_ARCH_DEFS: Record<MdistillerArch, { build: (numClasses: number) => tf.LayersModel; init: InitScheme }> = {
  resnet8x4: { build: (c) => cifarResNet(8, R4, c, 'resnet8x4'), init: KAIMING_INIT },
  resnet32x4: { build: (c) => cifarResNet(32, R4, c, 'resnet32x4'), init: KAIMING_INIT },
  resnet20: { build: (c) => cifarResNet(20, R, c, 'resnet20'), init: KAIMING_INIT },
  resnet32: { build: (c) => cifarResNet(32, R, c, 'resnet32'), init: KAIMING_INIT },
  resnet56: { build: (c) => cifarResNet(56, R, c, 'resnet56'), init: KAIMING_INIT },
  resnet110: { build: (c) => cifarResNet(110, R, c, 'resnet110'), init: KAIMING_INIT },
  wrn_16_2: { build: (c) => wideResNet(16, 2, c, 'wrn_16_2'), init: WRN_INIT },
  wrn_40_1: { build: (c) => wideResNet(40, 1, c, 'wrn_40_1'), init: WRN_INIT },
  wrn_40_2: { build: (c) => wideResNet(40, 2, c, 'wrn_40_2'), init: WRN_INIT },
  vgg8: { build: (c) => vgg(VGG8, c, 'vgg8'), init: VGG_INIT },
  vgg13: { build: (c) => vgg(VGG13, c, 'vgg13'), init: VGG_INIT },
  MobileNetV2: { build: (c) => mobileNetV2(6, 0.5, c, 'MobileNetV2'), init: VGG_INIT },
  ShuffleV1: { build: (c) => shuffleNetV1([240, 480, 960], [4, 8, 4], 3, c, 'ShuffleV1'), init: TORCH_INIT },
  ShuffleV2: { build: (c) => shuffleNetV2([116, 232, 464, 1024], [3, 7, 3], c, 'ShuffleV2'), init: TORCH_INIT },
  ResNet50: { build: (c) => resNetV2('bottleneck', [3, 4, 6, 3], c, 'ResNet50'), init: KAIMING_INIT },
};
