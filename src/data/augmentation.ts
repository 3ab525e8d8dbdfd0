/**
 * Augmentation as a step of the data pipeline: an `Augmentation` turns a batch of n uint8 HWC images into float32
 * in [0, 1]. Its random draws come from seeded streams of the batch (`rngOf(tag)` = deriveSeed(seed, epoch,
 * batch, tag)), so it gives the same bytes in the main thread and in a prefetch worker. It is built from a plain,
 * serialisable `AugmentSpec` (the policy names of augment.ts): the worker threads rebuild it from the spec, never
 * share state with the main thread.
 */
import { InputError } from '../errors.js';
import type { SeededRng } from '../rng.js';
import { AUGMENTATIONS, Augmenter, CROP_PADDING, type AugmentationName, type ImageShape } from './augment.js';

export { CROP_PADDING };

/** The stream of view A (every policy) and of view B (the pair's second view), so view A never depends on B. */
export const TAG_AUGMENT = 0x4155;
export const TAG_PAIR = 0x5041;

/** What to augment with: data.augment (true = crop-flip, false = none) and the pair's view B policy, if any. */
export interface AugmentSpec {
  augment: boolean | AugmentationName;
  pair?: AugmentationName;
}

export interface Augmentation {
  /**
   * Output images per input image (1; 2 for a pair of views such as DKL's AutoAugment pair). Views are stacked
   * view-major: view v of image k is output row v·n + k, and the batch's labels are repeated per view.
   */
  views: number;
  /** Writes views·n images (float32 HWC in [0, 1]) to `out` from the n images in `images`. */
  apply(images: Uint8Array, n: number, rngOf: (tag: number) => SeededRng, out: Float32Array): void;
}

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

/** The policy of a `data.augment` value: true is crop-flip, false none. */
export function augmentationName(augment: boolean | AugmentationName): AugmentationName {
  return augment === true ? 'crop-flip' : augment === false ? 'none' : augment;
}

/** Writes n augmented images of one view at `out[offset…]`, drawing from `rng` image after image. */
type ViewWriter = (images: Uint8Array, n: number, rng: SeededRng, out: Float32Array, offset: number) => void;

function viewWriter(policy: AugmentationName, shape: ImageShape): ViewWriter {
  const size = shape.height * shape.width * shape.channels;
  if (policy === 'none') return (images, n, _rng, out, offset) => copyScaled(images, 0, out, offset, n * size);
  if (policy === 'crop-flip') {
    // The fused crop + flip + scale pass; per image dy, dx, flip drawn in that order (as every earlier version).
    return (images, n, rng, out, offset) => {
      for (let k = 0; k < n; k++) {
        const dy = rng.int(2 * CROP_PADDING + 1);
        const dx = rng.int(2 * CROP_PADDING + 1);
        const flip = rng.next() < 0.5;
        cropFlip(images, k * size, out, offset + k * size, shape, dy, dx, flip);
      }
    };
  }
  // The other policies augment a uint8 copy of each image, then scale it.
  const augmenter = new Augmenter(policy, shape);
  const img = new Uint8Array(size);
  return (images, n, rng, out, offset) => {
    for (let k = 0; k < n; k++) {
      img.set(images.subarray(k * size, (k + 1) * size));
      augmenter.apply(img, rng);
      copyScaled(img, 0, out, offset + k * size, size);
    }
  };
}

function checkPolicy(key: string, policy: string, shape: ImageShape): void {
  if (!(AUGMENTATIONS as readonly string[]).includes(policy))
    throw new InputError(`${key}: expected true, false or one of ${AUGMENTATIONS.join('|')}, got ${policy}`);
  if (policy !== 'none' && shape.channels !== 3) throw new InputError(`${key}: '${policy}' needs 3-channel images, got ${shape.channels} channels`);
}

/** The augmentation a spec names, for images of `shape` (one per thread: it owns scratch buffers). */
export function augmentationFor(spec: AugmentSpec, shape: ImageShape): Augmentation {
  const policy = augmentationName(spec.augment);
  checkPolicy('augment', policy, shape);
  if (spec.pair !== undefined) checkPolicy('pair', spec.pair, shape);
  const size = shape.height * shape.width * shape.channels;
  const viewA = viewWriter(policy, shape);
  const viewB = spec.pair !== undefined ? viewWriter(spec.pair, shape) : undefined;
  return {
    views: viewB ? 2 : 1,
    apply(images, n, rngOf, out) {
      viewA(images, n, rngOf(TAG_AUGMENT), out, 0);
      // View B: the same images through the pair policy, from its own stream.
      viewB?.(images, n, rngOf(TAG_PAIR), out, n * size);
    },
  };
}
