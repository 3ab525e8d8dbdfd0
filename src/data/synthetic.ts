/**
 * A built-in CIFAR-shaped dataset that needs no files: 32×32×3 uint8 images in 10 classes, every pixel fixed by a
 * seed. Each class is a texture (solid, stripes of two widths and two orientations, checkerboard, cross-hatch, dots,
 * concentric rings, grid lines) filling a disc or square of random position and size over a random colour gradient
 * with per-pixel noise. The texture's hue leans towards a class-specific hue, with ranges that overlap between
 * neighbouring classes: colour gives a small CNN a quick partial cue (above chance within tens of steps), the texture
 * the rest. Contrast against the background and noise vary per image, so some images are genuinely ambiguous and
 * clean accuracy stays below 100%; faint textures sit within a few multiples of 8/255 of the background, so
 * adversarial robustness is a meaningful quantity. Every texture is symmetric under a horizontal flip, so the
 * standard augmentation never turns one class into another.
 *
 * Image i of a split depends only on (seed, split, i): growing nTrain keeps the first images unchanged.
 */
import { InputError } from '../errors.js';
import { deriveSeed, permutation, SeededRng } from '../rng.js';
import type { ImageSet, SyntheticOptions } from './types.js';

export const SYNTHETIC_CLASSES = [
  'solid',
  'h-stripes',
  'v-stripes',
  'checkerboard',
  'cross-hatch',
  'dots',
  'rings',
  'grid',
  'wide-h-stripes',
  'wide-v-stripes',
] as const;

const SIDE = 32;
const NUM_CLASSES = SYNTHETIC_CLASSES.length;
/** Seed-derivation tags: train and test images never share a generator. */
const SPLIT_TRAIN = 1;
const SPLIT_TEST = 2;
const LABEL_TAG = 3;

/**
 * Whether the texture of class `cls` is "on" at pixel (x, y). (u, v) are the pixel coordinates shifted by the
 * image's random phase (non-negative), (dx, dy) the offset from the patch centre (for the rings).
 */
function textureOn(cls: number, u: number, v: number, dx: number, dy: number): boolean {
  switch (cls) {
    case 0:
      return true;
    case 1:
      return ((v >> 1) & 1) === 0;
    case 2:
      return ((u >> 1) & 1) === 0;
    case 3:
      return (((u >> 1) + (v >> 1)) & 1) === 0;
    case 4:
      return (u + v) % 4 === 0 || (u - v + 64) % 4 === 0;
    case 5:
      return (u & 3) < 2 && (v & 3) < 2;
    case 6:
      return (Math.floor(Math.sqrt(dx * dx + dy * dy) / 2) & 1) === 0;
    case 7:
      return (u & 3) === 0 || (v & 3) === 0;
    case 8:
      return ((v >> 2) & 1) === 0;
    default:
      return ((u >> 2) & 1) === 0;
  }
}

/** Draws one image of class `cls` into `out` at byte offset `off` (NHWC, 3 channels). */
function drawImage(out: Uint8Array, off: number, cls: number, rng: SeededRng): void {
  // background: linear gradient between two random colours along a random direction
  const c0r = rng.next(),
    c0g = rng.next(),
    c0b = rng.next();
  const c1r = rng.next(),
    c1g = rng.next(),
    c1b = rng.next();
  const angle = rng.uniform(0, 2 * Math.PI);
  const gx = Math.cos(angle) / (2 * SIDE),
    gy = Math.sin(angle) / (2 * SIDE);
  // texture colour: a hue that depends on the class, loosely (±30° around 36°·class, so neighbouring classes
  // overlap and colour alone is only a partial cue), random saturation and brightness
  const [fr, fg, fb] = hsvToRgb(cls * 36 + rng.uniform(-30, 30), rng.uniform(0.45, 1), rng.uniform(0.3, 1));
  // patch: a disc or a square, so the outline carries no class information
  const r = rng.uniform(6, 13);
  const square = rng.next() < 0.5;
  const cx = rng.uniform(r * 0.5, SIDE - 1 - r * 0.5);
  const cy = rng.uniform(r * 0.5, SIDE - 1 - r * 0.5);
  const pu = rng.int(8),
    pv = rng.int(8);
  const noise = rng.uniform(0.02, 0.12) * 255;
  // noise: three 10-bit uniforms per pixel from one 32-bit draw (a third of the generator calls)
  const noiseScale = (2 * noise) / 1023;
  const r2 = r * r;
  for (let y = 0; y < SIDE; y++) {
    const dy = y - cy;
    for (let x = 0; x < SIDE; x++) {
      const dx = x - cx;
      const inPatch = square ? Math.abs(dx) <= r * 0.85 && Math.abs(dy) <= r * 0.85 : dx * dx + dy * dy <= r2;
      let pr: number, pg: number, pb: number;
      if (inPatch && textureOn(cls, x + pu, y + pv, dx, dy)) {
        pr = fr;
        pg = fg;
        pb = fb;
      } else {
        const t = 0.5 + (x - SIDE / 2) * gx + (y - SIDE / 2) * gy;
        pr = c0r + (c1r - c0r) * t;
        pg = c0g + (c1g - c0g) * t;
        pb = c0b + (c1b - c0b) * t;
      }
      const bits = rng.nextUint32();
      const d = off + (y * SIDE + x) * 3;
      out[d] = quantize(pr * 255 + (bits & 1023) * noiseScale - noise);
      out[d + 1] = quantize(pg * 255 + ((bits >>> 10) & 1023) * noiseScale - noise);
      out[d + 2] = quantize(pb * 255 + ((bits >>> 20) & 1023) * noiseScale - noise);
    }
  }
}

/** HSV (hue in degrees) to RGB in [0, 1]. */
function hsvToRgb(h: number, s: number, v: number): [number, number, number] {
  const hh = (((h % 360) + 360) % 360) / 60;
  const c = v * s;
  const x = c * (1 - Math.abs((hh % 2) - 1));
  const m = v - c;
  const [r, g, b] = hh < 1 ? [c, x, 0] : hh < 2 ? [x, c, 0] : hh < 3 ? [0, c, x] : hh < 4 ? [0, x, c] : hh < 5 ? [x, 0, c] : [c, 0, x];
  return [r + m, g + m, b + m];
}

function quantize(v: number): number {
  return v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v);
}

function makeSplit(name: string, n: number, seed: number, split: number): ImageSet {
  const images = new Uint8Array(n * SIDE * SIDE * 3);
  const labels = new Uint8Array(n);
  // Labels: every block of 10 consecutive images holds each class once, in a seeded order, so any prefix is
  // balanced within one image per class and the order carries no pattern.
  for (let block = 0; block * NUM_CLASSES < n; block++) {
    const perm = permutation(NUM_CLASSES, new SeededRng(deriveSeed(seed, split, LABEL_TAG, block)));
    for (let k = 0; k < NUM_CLASSES && block * NUM_CLASSES + k < n; k++) labels[block * NUM_CLASSES + k] = perm[k]!;
  }
  for (let i = 0; i < n; i++) drawImage(images, i * SIDE * SIDE * 3, labels[i]!, new SeededRng(deriveSeed(seed, split, i)));
  return { name, images, labels, n, numClasses: NUM_CLASSES, height: SIDE, width: SIDE, channels: 3 };
}

function checkCount(v: number, field: string, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new InputError(`synthetic.${field}: expected an integer ≥ ${min}, got ${v}`);
}

/** The synthetic dataset: `nTrain` training and `nTest` test images from `seed`. */
export function makeSynthetic(opts: SyntheticOptions): { train: ImageSet; test: ImageSet } {
  checkCount(opts.nTrain, 'nTrain', 1);
  checkCount(opts.nTest, 'nTest', 0);
  if (!Number.isSafeInteger(opts.seed)) throw new InputError(`synthetic.seed: expected an integer, got ${opts.seed}`);
  return {
    train: makeSplit('synthetic-train', opts.nTrain, opts.seed, SPLIT_TRAIN),
    test: makeSplit('synthetic-test', opts.nTest, opts.seed, SPLIT_TEST),
  };
}
