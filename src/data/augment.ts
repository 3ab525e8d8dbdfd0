/**
 * Augmentation: a pluggable step of the data pipeline. An `Augmentation` turns a batch of n uint8 HWC images
 * into float32 in [0, 1] using one seeded random stream per batch (from (seed, epoch, batch)), so it runs the
 * same in the main thread and in a prefetch worker. New augmentations are entries of `AUGMENTATIONS`: the worker
 * threads look them up there by name, so an augmentation must be a plain function of its arguments (no state
 * shared with the main thread).
 */
import type { SeededRng } from '../rng.js';

export interface ImageShape {
  height: number;
  width: number;
  channels: number;
}

export interface Augmentation {
  /**
   * Output images per input image (1; 2 for a pair of views such as DKL's AutoAugment pair). Views are stacked
   * view-major: view v of image k is output row v·n + k, and the batch's labels are repeated per view.
   */
  views: number;
  /** Writes views·n images (float32 HWC in [0, 1]) to `out` from the n images in `images`. */
  apply(images: Uint8Array, n: number, shape: ImageShape, rng: SeededRng, out: Float32Array): void;
}

/** Zero padding of the random crop (the references' `RandomCrop(32, padding=4)`). */
export const CROP_PADDING = 4;

/** v/255 for every byte value, rounded once to float32, so scaling is a table lookup. */
const UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/** Copies one uint8 image into `dst` scaled to [0, 1], without augmentation. */
export function copyScaled(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, size: number): void {
  for (let k = 0; k < size; k++) dst[dstOff + k] = UNIT[src[srcOff + k]!]!;
}

/**
 * Random-crop-and-flip of one H×W×C uint8 image into `dst` scaled to [0, 1]. The crop window starts at (dy, dx)
 * in the image zero-padded by `pad` pixels on each side (0 ≤ dy, dx ≤ 2·pad); `flip` then mirrors it
 * horizontally, as torchvision's RandomCrop followed by RandomHorizontalFlip:
 *   out[y][x] = padded[y + dy][(flip ? W-1-x : x) + dx].
 */
export function cropFlip(
  src: Uint8Array,
  srcOff: number,
  dst: Float32Array,
  dstOff: number,
  shape: ImageShape,
  dy: number,
  dx: number,
  flip: boolean,
  pad = CROP_PADDING,
): void {
  const { height: h, width: w, channels: c } = shape;
  const row = w * c;
  for (let y = 0; y < h; y++) {
    const sy = y + dy - pad;
    const o = dstOff + y * row;
    if (sy < 0 || sy >= h) {
      dst.fill(0, o, o + row);
      continue;
    }
    const srow = srcOff + sy * row;
    for (let x = 0; x < w; x++) {
      const sx = (flip ? w - 1 - x : x) + dx - pad;
      const d = o + x * c;
      if (sx < 0 || sx >= w) {
        for (let k = 0; k < c; k++) dst[d + k] = 0;
      } else {
        const s = srow + sx * c;
        for (let k = 0; k < c; k++) dst[d + k] = UNIT[src[s + k]!]!;
      }
    }
  }
}

/** No augmentation: scaling only. */
export const none: Augmentation = {
  views: 1,
  apply(images, n, shape, _rng, out) {
    copyScaled(images, 0, out, 0, n * shape.height * shape.width * shape.channels);
  },
};

/** Random crop 32 from 4-pixel zero padding + horizontal flip; per image dy, dx, flip drawn in that order. */
export const cropFlipAugmentation: Augmentation = {
  views: 1,
  apply(images, n, shape, rng, out) {
    const size = shape.height * shape.width * shape.channels;
    for (let k = 0; k < n; k++) {
      const dy = rng.int(2 * CROP_PADDING + 1);
      const dx = rng.int(2 * CROP_PADDING + 1);
      const flip = rng.next() < 0.5;
      cropFlip(images, k * size, out, k * size, shape, dy, dx, flip);
    }
  },
};

/** Every augmentation by name (the values of `data.augment`; true = 'crop-flip', false = 'none'). */
export const AUGMENTATIONS: Record<string, Augmentation> = { none, 'crop-flip': cropFlipAugmentation };

/** The augmentation a config names (booleans: the historical `data.augment: true | false`). */
export function augmentationName(augment: boolean | string): string {
  return augment === true ? 'crop-flip' : augment === false ? 'none' : augment;
}

export function getAugmentation(name: string): Augmentation {
  const a = AUGMENTATIONS[name];
  if (!a) throw new RangeError(`augmentation '${name}': expected one of ${Object.keys(AUGMENTATIONS).join('|')}`);
  return a;
}
