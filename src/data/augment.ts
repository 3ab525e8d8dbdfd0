/**
 * The training augmentations of the references, as policies over uint8 H×W×3 images (the `data.augment` choice).
 *
 *   none                nothing
 *   crop-flip           RandomCrop(32, padding=4) + RandomHorizontalFlip (every reference; `augment: true`)
 *   crop-flip-rotate    + RandomRotation(15) (nearest, fill 0): DM-Improves-AT's CIFAR-100 `base`
 *   cutout-16           crop-flip + Cutout(16) as DKL's `autoaug.py`
 *   cutout-18           crop-flip + Cutout(18) as DM-Improves-AT's `cutout`
 *   autoaugment         crop-flip + AutoAugment's CIFAR-10 policy as DKL and DM-Improves-AT run it (their
 *                       `autoaug.py`/`autoaugment.py`, fill 128): DKL's view B of the AutoAugment pair
 *   autoaugment-cutout  autoaugment + Cutout(18): DM-Improves-AT's `autoaugment`
 *   autoaugment-tv      crop-flip + torchvision's AutoAugment(AutoAugmentPolicy.CIFAR10, fill 128)
 *   randaugment         torchvision's RandAugment(num_ops 2, magnitude 14) then crop-flip
 *   randaugment-dm      ildoonet's RandAugment(2, 14), the package DM-Improves-AT installs, then crop-flip
 *   idbh-weak           IDBH 'cifar10-weak' (Li & Spratling 2023, DM-Improves-AT's core/data/idbh.py)
 *
 * Every random draw comes from the SeededRng handed in, so an augmented batch is a pure function of (images,
 * seed). Plain synchronous code on typed arrays: callable from worker threads.
 */
import type { SeededRng } from '../rng.js';
import {
  type Affine,
  type Fill,
  type ImageShape,
  affineBicubic,
  affineNearest,
  autocontrast,
  brightness,
  color,
  contrast,
  cropFlipU8,
  cutout,
  equalize,
  fillRect,
  flipHorizontal,
  inverseAffine,
  invert,
  posterize,
  rotate,
  sharpness,
  solarize,
} from './augment-ops.js';

export const AUGMENTATIONS = [
  'none',
  'crop-flip',
  'crop-flip-rotate',
  'cutout-16',
  'cutout-18',
  'autoaugment',
  'autoaugment-cutout',
  'autoaugment-tv',
  'randaugment',
  'randaugment-dm',
  'idbh-weak',
] as const;
export type AugmentationName = (typeof AUGMENTATIONS)[number];

/** Zero padding of the random crop (the references' `RandomCrop(32, padding=4)`). */
export const CROP_PADDING = 4;

const BLACK: Fill = [0, 0, 0];
const GREY: Fill = [128, 128, 128];

/** An image transform: reads `src`, writes `dst` (distinct arrays); `scratch` is a third buffer it may use. */
type Op = (src: Uint8Array, dst: Uint8Array, shape: ImageShape, scratch: Uint8Array) => void;

// ---------------------------------------------------------------------------------------------------------------
// AutoAugment, CIFAR-10 policy (Cubuk et al. 2019): 25 sub-policies of two (op, probability, magnitude bin) each.
// The table is the paper's, identical in DKL's autoaug.py, DM-Improves-AT's autoaugment.py and torchvision.

export type AutoAugmentOp =
  | 'invert'
  | 'contrast'
  | 'rotate'
  | 'translateX'
  | 'translateY'
  | 'sharpness'
  | 'shearX'
  | 'shearY'
  | 'autocontrast'
  | 'equalize'
  | 'posterize'
  | 'color'
  | 'brightness'
  | 'solarize';

/** [op1, p1, bin1, op2, p2, bin2] */
export type SubPolicy = readonly [AutoAugmentOp, number, number, AutoAugmentOp, number, number];

export const AUTOAUGMENT_CIFAR10: readonly SubPolicy[] = [
  ['invert', 0.1, 7, 'contrast', 0.2, 6],
  ['rotate', 0.7, 2, 'translateX', 0.3, 9],
  ['sharpness', 0.8, 1, 'sharpness', 0.9, 3],
  ['shearY', 0.5, 8, 'translateY', 0.7, 9],
  ['autocontrast', 0.5, 8, 'equalize', 0.9, 2],
  ['shearY', 0.2, 7, 'posterize', 0.3, 7],
  ['color', 0.4, 3, 'brightness', 0.6, 7],
  ['sharpness', 0.3, 9, 'brightness', 0.7, 9],
  ['equalize', 0.6, 5, 'equalize', 0.5, 1],
  ['contrast', 0.6, 7, 'sharpness', 0.6, 5],
  ['color', 0.7, 7, 'translateX', 0.5, 8],
  ['equalize', 0.3, 7, 'autocontrast', 0.4, 8],
  ['translateY', 0.4, 3, 'sharpness', 0.2, 6],
  ['brightness', 0.9, 6, 'color', 0.2, 8],
  ['solarize', 0.5, 2, 'invert', 0.0, 3],
  ['equalize', 0.2, 0, 'autocontrast', 0.6, 0],
  ['equalize', 0.2, 8, 'equalize', 0.6, 4],
  ['color', 0.9, 9, 'equalize', 0.6, 6],
  ['autocontrast', 0.8, 4, 'solarize', 0.2, 8],
  ['brightness', 0.1, 3, 'color', 0.7, 0],
  ['solarize', 0.4, 5, 'autocontrast', 0.9, 3],
  ['translateY', 0.9, 9, 'translateY', 0.7, 9],
  ['autocontrast', 0.9, 2, 'solarize', 0.8, 3],
  ['equalize', 0.8, 8, 'invert', 0.1, 3],
  ['translateY', 0.7, 9, 'autocontrast', 0.9, 1],
];

/** numpy's linspace(lo, hi, 10)[k]. */
function linspace10(lo: number, hi: number, k: number): number {
  const step = (hi - lo) / 9;
  return k === 9 ? hi : lo + k * step;
}

/**
 * One op of DKL's / DM-Improves-AT's `SubPolicy` (the "DeepVoltaire" AutoAugment) at magnitude bin `bin` of 10,
 * with `sign` for the ops that draw one (shears, translations, enhancements; rotate has none there):
 * shears are bicubic, translations shift by bin/9 · 150/331 of the width (nearest), fill 128; solarize's
 * thresholds run 256 → 0; posterize's bits are round(linspace(8, 4)).
 */
export function autoAugmentOp(op: AutoAugmentOp, bin: number, sign: 1 | -1, src: Uint8Array, dst: Uint8Array, shape: ImageShape, scratch: Uint8Array): void {
  const m = (lo: number, hi: number) => linspace10(lo, hi, bin);
  switch (op) {
    case 'shearX':
      return affineBicubic(src, dst, shape, [1, m(0, 0.3) * sign, 0, 0, 1, 0], GREY);
    case 'shearY':
      return affineBicubic(src, dst, shape, [1, 0, 0, m(0, 0.3) * sign, 1, 0], GREY);
    case 'translateX':
      return affineNearest(src, dst, shape, [1, 0, m(0, 150 / 331) * shape.width * sign, 0, 1, 0], GREY);
    case 'translateY':
      return affineNearest(src, dst, shape, [1, 0, 0, 0, 1, m(0, 150 / 331) * shape.height * sign], GREY);
    case 'rotate':
      return rotate(src, dst, shape, m(0, 30), GREY);
    case 'color':
      return color(src, dst, shape, 1 + m(0, 0.9) * sign, scratch);
    case 'contrast':
      return contrast(src, dst, shape, 1 + m(0, 0.9) * sign, scratch);
    case 'sharpness':
      return sharpness(src, dst, shape, 1 + m(0, 0.9) * sign, scratch);
    case 'brightness':
      return brightness(src, dst, 1 + m(0, 0.9) * sign, scratch);
    case 'posterize':
      return posterize(src, dst, Math.round(m(8, 4)));
    case 'solarize':
      return solarize(src, dst, m(256, 0));
    case 'autocontrast':
      return autocontrast(src, dst, shape);
    case 'equalize':
      return equalize(src, dst, shape);
    case 'invert':
      return invert(src, dst);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// torchvision's op semantics (transforms/autoaugment.py `_apply_op` on a PIL image, nearest interpolation).

export type TvOp =
  | 'Identity'
  | 'ShearX'
  | 'ShearY'
  | 'TranslateX'
  | 'TranslateY'
  | 'Rotate'
  | 'Brightness'
  | 'Color'
  | 'Contrast'
  | 'Sharpness'
  | 'Posterize'
  | 'Solarize'
  | 'AutoContrast'
  | 'Equalize'
  | 'Invert';

/** torchvision's `_apply_op(img, name, magnitude, NEAREST, fill)` for a PIL image (magnitude already signed). */
export function tvApplyOp(name: TvOp, magnitude: number, fill: Fill, src: Uint8Array, dst: Uint8Array, shape: ImageShape, scratch: Uint8Array): void {
  const deg = (180 / Math.PI) * Math.atan(magnitude);
  const centre: [number, number] = [shape.width * 0.5, shape.height * 0.5];
  switch (name) {
    case 'Identity':
      dst.set(src);
      return;
    case 'ShearX':
      return affineNearest(src, dst, shape, inverseAffine([0, 0], 0, [0, 0], 1, [deg, 0]), fill);
    case 'ShearY':
      return affineNearest(src, dst, shape, inverseAffine([0, 0], 0, [0, 0], 1, [0, deg]), fill);
    case 'TranslateX':
      return affineNearest(src, dst, shape, inverseAffine(centre, 0, [Math.trunc(magnitude), 0], 1, [0, 0]), fill);
    case 'TranslateY':
      return affineNearest(src, dst, shape, inverseAffine(centre, 0, [0, Math.trunc(magnitude)], 1, [0, 0]), fill);
    case 'Rotate':
      return rotate(src, dst, shape, magnitude, fill);
    case 'Brightness':
      return brightness(src, dst, 1 + magnitude, scratch);
    case 'Color':
      return color(src, dst, shape, 1 + magnitude, scratch);
    case 'Contrast':
      return contrast(src, dst, shape, 1 + magnitude, scratch);
    case 'Sharpness':
      return sharpness(src, dst, shape, 1 + magnitude, scratch);
    case 'Posterize':
      return posterize(src, dst, Math.trunc(magnitude));
    case 'Solarize':
      return solarize(src, dst, magnitude);
    case 'AutoContrast':
      return autocontrast(src, dst, shape);
    case 'Equalize':
      return equalize(src, dst, shape);
    case 'Invert':
      return invert(src, dst);
  }
}

/** torchvision's `_augmentation_space(numBins, (h, w))`: the magnitude of bin k and whether it takes a sign. */
export function tvMagnitude(name: TvOp, numBins: number, bin: number, shape: ImageShape): { magnitude: number; signed: boolean } {
  // torch.linspace(lo, hi, n)[k], float32 throughout: lo + k·step for the first half, hi − (n−1−k)·step after.
  const fr = Math.fround;
  const lin = (lo: number, hi: number) => {
    const [l, h] = [fr(lo), fr(hi)];
    const step = fr(fr(h - l) / (numBins - 1));
    return bin < Math.floor(numBins / 2) ? fr(l + fr(step * bin)) : fr(h - fr(step * (numBins - 1 - bin)));
  };
  switch (name) {
    case 'ShearX':
    case 'ShearY':
      return { magnitude: lin(0, 0.3), signed: true };
    case 'TranslateX':
      return { magnitude: lin(0, (150 / 331) * shape.width), signed: true };
    case 'TranslateY':
      return { magnitude: lin(0, (150 / 331) * shape.height), signed: true };
    case 'Rotate':
      return { magnitude: lin(0, 30), signed: true };
    case 'Brightness':
    case 'Color':
    case 'Contrast':
    case 'Sharpness':
      return { magnitude: lin(0, 0.9), signed: true };
    case 'Posterize':
      return { magnitude: 8 - roundHalfEven(Math.fround(bin / Math.fround((numBins - 1) / 4))), signed: false };
    case 'Solarize':
      return { magnitude: lin(255, 0), signed: false };
    default:
      return { magnitude: 0, signed: false };
  }
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torchvision RandAugment's op list (CIFAR-sized images: all of them). */
export const TV_RANDAUGMENT_OPS: readonly TvOp[] = [
  'Identity',
  'ShearX',
  'ShearY',
  'TranslateX',
  'TranslateY',
  'Rotate',
  'Brightness',
  'Color',
  'Contrast',
  'Sharpness',
  'Posterize',
  'Solarize',
  'AutoContrast',
  'Equalize',
];

/** The torchvision names of AUTOAUGMENT_CIFAR10's ops. */
const TV_NAME: Record<AutoAugmentOp, TvOp> = {
  invert: 'Invert',
  contrast: 'Contrast',
  rotate: 'Rotate',
  translateX: 'TranslateX',
  translateY: 'TranslateY',
  sharpness: 'Sharpness',
  shearX: 'ShearX',
  shearY: 'ShearY',
  autocontrast: 'AutoContrast',
  equalize: 'Equalize',
  posterize: 'Posterize',
  color: 'Color',
  brightness: 'Brightness',
  solarize: 'Solarize',
};

// ---------------------------------------------------------------------------------------------------------------
// ildoonet/pytorch-randaugment (what DM-Improves-AT's `randaugment` imports): 16 ops, value m/30 of each range.

export const ILDOONET_OPS = [
  'AutoContrast',
  'Equalize',
  'Invert',
  'Rotate',
  'Posterize',
  'Solarize',
  'SolarizeAdd',
  'Color',
  'Contrast',
  'Brightness',
  'Sharpness',
  'ShearX',
  'ShearY',
  'CutoutAbs',
  'TranslateXabs',
  'TranslateYabs',
] as const;
export type IldoonetOp = (typeof ILDOONET_OPS)[number];
const ILDOONET_RANGE: Record<IldoonetOp, [number, number]> = {
  AutoContrast: [0, 1],
  Equalize: [0, 1],
  Invert: [0, 1],
  Rotate: [0, 30],
  Posterize: [0, 4],
  Solarize: [0, 256],
  SolarizeAdd: [0, 110],
  Color: [0.1, 1.9],
  Contrast: [0.1, 1.9],
  Brightness: [0.1, 1.9],
  Sharpness: [0.1, 1.9],
  ShearX: [0, 0.3],
  ShearY: [0, 0.3],
  CutoutAbs: [0, 40],
  TranslateXabs: [0, 100],
  TranslateYabs: [0, 100],
};

/** The value ildoonet's RandAugment hands op `name` at magnitude m (of 30). */
export function ildoonetValue(name: IldoonetOp, m: number): number {
  const [lo, hi] = ILDOONET_RANGE[name];
  return (m / 30) * (hi - lo) + lo;
}

/**
 * One ildoonet op at value v. `flip` negates the value of the signed ops (their `random.random() > 0.5`);
 * (cx, cy) is CutoutAbs's centre (its `np.random.uniform(w)`, which draws from (1, w]). Fill 0 as PIL's default,
 * so translations by more than the width (m = 14 gives 46.7 px) leave a black image, as in the reference.
 */
export function ildoonetOp(
  name: IldoonetOp,
  v: number,
  flip: boolean,
  centre: readonly [number, number],
  src: Uint8Array,
  dst: Uint8Array,
  shape: ImageShape,
  scratch: Uint8Array,
): void {
  const s = flip ? -v : v;
  switch (name) {
    case 'AutoContrast':
      return autocontrast(src, dst, shape);
    case 'Equalize':
      return equalize(src, dst, shape);
    case 'Invert':
      return invert(src, dst);
    case 'Rotate':
      return rotate(src, dst, shape, s, BLACK);
    case 'Posterize':
      return posterize(src, dst, Math.max(1, Math.trunc(v)));
    case 'Solarize':
      return solarize(src, dst, v);
    case 'SolarizeAdd':
      for (let i = 0; i < src.length; i++) {
        const t = Math.trunc(Math.min(255, src[i]! + v));
        dst[i] = t < 128 ? t : 255 - t;
      }
      return;
    case 'Color':
      return color(src, dst, shape, v, scratch);
    case 'Contrast':
      return contrast(src, dst, shape, v, scratch);
    case 'Brightness':
      return brightness(src, dst, v, scratch);
    case 'Sharpness':
      return sharpness(src, dst, shape, v, scratch);
    case 'ShearX':
      return affineNearest(src, dst, shape, [1, s, 0, 0, 1, 0], BLACK);
    case 'ShearY':
      return affineNearest(src, dst, shape, [1, 0, 0, s, 1, 0], BLACK);
    case 'TranslateXabs':
      return affineNearest(src, dst, shape, [1, 0, s, 0, 1, 0], BLACK);
    case 'TranslateYabs':
      return affineNearest(src, dst, shape, [1, 0, 0, 0, 1, s], BLACK);
    case 'CutoutAbs': {
      dst.set(src);
      const x0 = Math.trunc(Math.max(0, centre[0] - v / 2));
      const y0 = Math.trunc(Math.max(0, centre[1] - v / 2));
      // PIL's rectangle includes both corners (truncated to integers) and is clipped to the image.
      const x1 = Math.min(shape.width - 1, Math.trunc(Math.min(shape.width, x0 + v)));
      const y1 = Math.min(shape.height - 1, Math.trunc(Math.min(shape.height, y0 + v)));
      fillRect(dst, shape, y0, x0, y1 - y0 + 1, x1 - x0 + 1, [125, 123, 114]);
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// IDBH (Li & Spratling, "Data augmentation alone can improve adversarial training", ICLR 2023), 'cifar10-weak':
// flip, CropShift(0, 11), ColorShape('color'), RandomErasing(p 0.5).

export type IdbhColorOp = 'color' | 'brightness' | 'contrast' | 'sharpness' | 'autocontrast' | 'equalize' | 'shear' | 'rotate';
export const IDBH_COLOR_OPS: readonly IdbhColorOp[] = ['color', 'brightness', 'contrast', 'sharpness', 'autocontrast', 'equalize', 'shear', 'rotate'];

/**
 * One ColorShape('color') transform. `strength`: the enhancement factor, the shear in radians (signed), or the
 * rotation in whole degrees (signed); `shearX` picks the shear's axis. torchvision's F.affine about the image
 * centre and F.rotate, nearest, fill 0.
 */
export function idbhColorOp(
  op: IdbhColorOp,
  strength: number,
  shearX: boolean,
  src: Uint8Array,
  dst: Uint8Array,
  shape: ImageShape,
  scratch: Uint8Array,
): void {
  switch (op) {
    case 'color':
      return color(src, dst, shape, strength, scratch);
    case 'brightness':
      return brightness(src, dst, strength, scratch);
    case 'contrast':
      return contrast(src, dst, shape, strength, scratch);
    case 'sharpness':
      return sharpness(src, dst, shape, strength, scratch);
    case 'autocontrast':
      return autocontrast(src, dst, shape);
    case 'equalize':
      return equalize(src, dst, shape);
    case 'shear': {
      const deg = (strength * 180) / Math.PI;
      const centre: [number, number] = [shape.width * 0.5, shape.height * 0.5];
      return affineNearest(src, dst, shape, inverseAffine(centre, 0, [0, 0], 1, shearX ? [deg, 0] : [0, deg]), BLACK);
    }
    case 'rotate':
      return rotate(src, dst, shape, strength, BLACK);
  }
}

/**
 * IDBH's CropShift with total shift `strength`, split as cropX + cropY: crop (h − cropY)×(w − cropX) at (t1y, t1x),
 * zero-pad cropX left and right and cropY top and bottom, crop h×w at (t2y, t2x). Net effect: a shift by
 * (t1 + t2 − crop) of the content, with the cropped-away margins black.
 */
export function cropShift(
  src: Uint8Array,
  dst: Uint8Array,
  shape: ImageShape,
  cropX: number,
  cropY: number,
  t1x: number,
  t1y: number,
  t2x: number,
  t2y: number,
): void {
  const { height: h, width: w } = shape;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 3;
      const u = y + t2y - cropY; // row in the first crop
      const v = x + t2x - cropX;
      if (u >= 0 && u < h - cropY && v >= 0 && v < w - cropX) {
        const s = ((u + t1y) * w + (v + t1x)) * 3;
        dst[o] = src[s]!;
        dst[o + 1] = src[s + 1]!;
        dst[o + 2] = src[s + 2]!;
      } else {
        dst[o] = dst[o + 1] = dst[o + 2] = 0;
      }
    }
  }
}

/**
 * torchvision's RandomErasing(p, scale (0.02, 0.33), ratio (0.3, 3.3), value 0) parameters: up to 10 tries of an
 * area fraction and log-uniform aspect ratio; undefined when no try fits (then nothing is erased).
 */
export function erasingBox(rng: SeededRng, shape: ImageShape): { top: number; left: number; h: number; w: number } | undefined {
  const area = shape.height * shape.width;
  const logLo = Math.log(0.3);
  const logHi = Math.log(3.3);
  for (let t = 0; t < 10; t++) {
    const eraseArea = area * rng.uniform(0.02, 0.33);
    const aspect = Math.exp(rng.uniform(logLo, logHi));
    const h = Math.round(Math.sqrt(eraseArea * aspect));
    const w = Math.round(Math.sqrt(eraseArea / aspect));
    if (!(h < shape.height && w < shape.width)) continue;
    return { top: rng.int(shape.height - h + 1), left: rng.int(shape.width - w + 1), h, w };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Policies.

/**
 * Applies one policy to images in place, reusing its scratch buffers. One Augmenter per thread; `apply` draws
 * everything from `rng`, in a fixed order, so the result is a pure function of (image, rng state).
 */
export class Augmenter {
  readonly policy: AugmentationName;
  readonly shape: ImageShape;
  private readonly tmp: Uint8Array;
  private readonly scratch: Uint8Array;

  constructor(policy: AugmentationName, shape: ImageShape = { height: 32, width: 32, channels: 3 }) {
    if (!(AUGMENTATIONS as readonly string[]).includes(policy))
      throw new RangeError(`unknown augmentation '${policy}' (expected one of ${AUGMENTATIONS.join(', ')})`);
    if (policy !== 'none' && shape.channels !== 3) {
      throw new RangeError(`augmentation '${policy}' needs 3-channel images, got ${shape.channels}`);
    }
    this.policy = policy;
    this.shape = shape;
    const size = shape.height * shape.width * shape.channels;
    this.tmp = new Uint8Array(size);
    this.scratch = new Uint8Array(size);
  }

  /** Runs `op` from `img` into the temporary buffer and copies the result back. */
  private run(img: Uint8Array, op: Op): void {
    op(img, this.tmp, this.shape, this.scratch);
    img.set(this.tmp);
  }

  /** RandomCrop(32, padding 4) then RandomHorizontalFlip, drawing (dy, dx, flip) as src/data/batches.ts does. */
  private cropFlip(img: Uint8Array, rng: SeededRng): void {
    const dy = rng.int(2 * CROP_PADDING + 1);
    const dx = rng.int(2 * CROP_PADDING + 1);
    const flip = rng.next() < 0.5;
    cropFlipU8(img, this.tmp, this.shape, dy, dx, flip, CROP_PADDING);
    img.set(this.tmp);
  }

  private cutout(img: Uint8Array, rng: SeededRng, length: number): void {
    const cy = rng.int(this.shape.height);
    const cx = rng.int(this.shape.width);
    cutout(img, this.shape, cy, cx, length, 0);
  }

  /** DKL's SubPolicy: a uniformly chosen sub-policy, each op applied with its probability, signs ±1 uniform. */
  private autoAugment(img: Uint8Array, rng: SeededRng): void {
    const [op1, p1, b1, op2, p2, b2] = AUTOAUGMENT_CIFAR10[rng.int(AUTOAUGMENT_CIFAR10.length)]!;
    if (rng.next() < p1) {
      const sign = rng.sign() as 1 | -1;
      this.run(img, (s, d, sh, sc) => autoAugmentOp(op1, b1, sign, s, d, sh, sc));
    }
    if (rng.next() < p2) {
      const sign = rng.sign() as 1 | -1;
      this.run(img, (s, d, sh, sc) => autoAugmentOp(op2, b2, sign, s, d, sh, sc));
    }
  }

  /** torchvision's AutoAugment(CIFAR10, NEAREST, fill 128): sub-policy, two probabilities, two signs. */
  private autoAugmentTv(img: Uint8Array, rng: SeededRng): void {
    const [op1, p1, b1, op2, p2, b2] = AUTOAUGMENT_CIFAR10[rng.int(AUTOAUGMENT_CIFAR10.length)]!;
    const probs = [rng.next(), rng.next()];
    const signs = [rng.int(2), rng.int(2)];
    const ops: [AutoAugmentOp, number, number][] = [
      [op1, p1, b1],
      [op2, p2, b2],
    ];
    ops.forEach(([op, p, bin], i) => {
      if (!(probs[i]! <= p) || p === 0) return;
      const name = TV_NAME[op];
      const { magnitude, signed } = tvMagnitude(name, 10, bin, this.shape);
      const mag = signed && signs[i] === 0 ? -magnitude : magnitude;
      this.run(img, (s, d, sh, sc) => tvApplyOp(name, mag, GREY, s, d, sh, sc));
    });
  }

  /** torchvision's RandAugment(2, 14, 31 bins, NEAREST, fill 0). */
  private randAugmentTv(img: Uint8Array, rng: SeededRng): void {
    for (let k = 0; k < 2; k++) {
      const name = TV_RANDAUGMENT_OPS[rng.int(TV_RANDAUGMENT_OPS.length)]!;
      const { magnitude, signed } = tvMagnitude(name, 31, 14, this.shape);
      const mag = signed && rng.int(2) === 1 ? -magnitude : magnitude;
      this.run(img, (s, d, sh, sc) => tvApplyOp(name, mag, BLACK, s, d, sh, sc));
    }
  }

  /** ildoonet's RandAugment(2, 14): two ops drawn with replacement, each at its m = 14 value. */
  private randAugmentDm(img: Uint8Array, rng: SeededRng): void {
    for (let k = 0; k < 2; k++) {
      const name = ILDOONET_OPS[rng.int(ILDOONET_OPS.length)]!;
      const v = ildoonetValue(name, 14);
      const flip = rng.next() > 0.5;
      const { width: w, height: h } = this.shape;
      const centre: [number, number] = [w + (1 - w) * rng.next(), h + (1 - h) * rng.next()];
      this.run(img, (s, d, sh, sc) => ildoonetOp(name, v, flip, centre, s, d, sh, sc));
    }
  }

  private idbhWeak(img: Uint8Array, rng: SeededRng): void {
    if (rng.next() < 0.5) this.run(img, (s, d, sh) => flipHorizontal(s, d, sh));
    const strength = rng.int(11);
    const cropX = rng.int(strength + 1);
    const cropY = strength - cropX;
    const t1x = rng.int(cropX + 1);
    const t1y = rng.int(cropY + 1);
    const t2x = rng.int(cropX + 1);
    const t2y = rng.int(cropY + 1);
    this.run(img, (s, d, sh) => cropShift(s, d, sh, cropX, cropY, t1x, t1y, t2x, t2y));
    const op = IDBH_COLOR_OPS[rng.int(IDBH_COLOR_OPS.length)]!;
    let value = 0;
    let shearX = true;
    if (op === 'color' || op === 'sharpness') value = rng.uniform(0.1, 1.9);
    else if (op === 'brightness' || op === 'contrast') value = rng.uniform(0.5, 1.9);
    else if (op === 'shear') {
      value = rng.uniform(0.05, 0.15) * rng.sign();
      shearX = rng.next() < 0.5;
    } else if (op === 'rotate') value = (1 + rng.int(10)) * rng.sign();
    this.run(img, (s, d, sh, sc) => idbhColorOp(op, value, shearX, s, d, sh, sc));
    if (rng.next() < 0.5) {
      const box = erasingBox(rng, this.shape);
      if (box) fillRect(img, this.shape, box.top, box.left, box.h, box.w, BLACK);
    }
  }

  /** Augments one H×W×C image in place. */
  apply(img: Uint8Array, rng: SeededRng): void {
    switch (this.policy) {
      case 'none':
        return;
      case 'crop-flip':
        return this.cropFlip(img, rng);
      case 'crop-flip-rotate': {
        this.cropFlip(img, rng);
        const angle = rng.uniform(-15, 15);
        return this.run(img, (s, d, sh) => rotate(s, d, sh, angle, BLACK));
      }
      case 'cutout-16':
        this.cropFlip(img, rng);
        return this.cutout(img, rng, 16);
      case 'cutout-18':
        this.cropFlip(img, rng);
        return this.cutout(img, rng, 18);
      case 'autoaugment':
        this.cropFlip(img, rng);
        return this.autoAugment(img, rng);
      case 'autoaugment-cutout':
        this.cropFlip(img, rng);
        this.autoAugment(img, rng);
        return this.cutout(img, rng, 18);
      case 'autoaugment-tv':
        this.cropFlip(img, rng);
        return this.autoAugmentTv(img, rng);
      case 'randaugment':
        this.randAugmentTv(img, rng);
        return this.cropFlip(img, rng);
      case 'randaugment-dm':
        this.randAugmentDm(img, rng);
        return this.cropFlip(img, rng);
      case 'idbh-weak':
        return this.idbhWeak(img, rng);
    }
  }

  /** Augments n consecutive images of `images` (N×H×W×C) in place, in order, from one rng. */
  applyBatch(images: Uint8Array, n: number, rng: SeededRng): void {
    const size = this.shape.height * this.shape.width * this.shape.channels;
    if (images.length < n * size) throw new RangeError(`applyBatch: ${images.length} bytes hold fewer than ${n} images of ${size}`);
    for (let k = 0; k < n; k++) this.apply(images.subarray(k * size, (k + 1) * size), rng);
  }
}

/** One-shot form of `Augmenter.applyBatch`: augments n images N×H×W×C in place. */
export function augmentBatch(policy: AugmentationName, images: Uint8Array, n: number, shape: ImageShape, rng: SeededRng): void {
  new Augmenter(policy, shape).applyBatch(images, n, rng);
}

export type { Affine, Fill, ImageShape };
