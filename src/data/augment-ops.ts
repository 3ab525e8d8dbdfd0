/**
 * Image operations of the augmentation policies, on one uint8 H×W×3 (HWC, RGB) image, as PIL computes them.
 * Every policy the references run (DKL's and DM-Improves-AT's AutoAugment, torchvision's and ildoonet's RandAugment,
 * IDBH, RandomRotation) calls PIL on a PIL image, so PIL's arithmetic is the definition: affine maps sample the
 * input at the pixel centre (16.16 fixed point for nearest-neighbour maps with a shear or rotation, double for pure
 * translations, bicubic with PIL's a = −1 kernel), enhancements blend with a float32 factor and truncate, the
 * colour-to-grey conversion uses PIL's integer luma. test/data/augment-ops.test.ts compares each op with PIL's
 * output (fixture made by scripts/fixtures/augment_ops.py).
 *
 * Plain synchronous functions on typed arrays, no imports: they run in worker threads as well as on the main thread.
 * `src` and `dst` may be the same array only for the point-wise ops (LUTs, blends with a constant degenerate).
 */

export interface ImageShape {
  height: number;
  width: number;
  channels: number;
}

/** An RGB fill colour (one value per channel). */
export type Fill = readonly [number, number, number];

/** PIL's affine data (a, b, c, d, e, f): output pixel (x, y) samples input (a·x' + b·y' + c, d·x' + e·y' + f) at centres x' = x + ½. */
export type Affine = readonly [number, number, number, number, number, number];

function checkRgb(shape: ImageShape): void {
  if (shape.channels !== 3) throw new RangeError(`augmentation ops need 3-channel (RGB) images, got ${shape.channels}`);
}

/** Applies a 256-entry table to every byte (invert, solarize, posterize, autocontrast, equalize). */
export function applyLut(src: Uint8Array, dst: Uint8Array, lut: ArrayLike<number>): void {
  for (let i = 0; i < src.length; i++) dst[i] = lut[src[i]!]!;
}

/** Applies one 256-entry table per channel: `luts` holds channel k's table at [256·k, 256·k + 256). */
function applyChannelLuts(src: Uint8Array, dst: Uint8Array, luts: Uint8Array, c: number): void {
  for (let i = 0; i < src.length; i += c) for (let k = 0; k < c; k++) dst[i + k] = luts[(k << 8) | src[i + k]!]!;
}

/** ImageOps.invert: 255 − v. */
export function invert(src: Uint8Array, dst: Uint8Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = 255 - src[i]!;
}

/** ImageOps.solarize: values ≥ threshold are inverted (threshold 256 or more: identity). */
export function solarize(src: Uint8Array, dst: Uint8Array, threshold: number): void {
  for (let i = 0; i < src.length; i++) {
    const v = src[i]!;
    dst[i] = v < threshold ? v : 255 - v;
  }
}

/** ImageOps.posterize: keeps the top `bits` bits of every value (8: identity). */
export function posterize(src: Uint8Array, dst: Uint8Array, bits: number): void {
  if (!Number.isInteger(bits) || bits < 0 || bits > 8) throw new RangeError(`posterize: bits must be an integer in [0, 8], got ${bits}`);
  const mask = ~((1 << (8 - bits)) - 1) & 0xff;
  for (let i = 0; i < src.length; i++) dst[i] = src[i]! & mask;
}

/** Per-channel histograms, channel k's counts at [256·k, 256·k + 256). */
function channelHistograms(src: Uint8Array, c: number): Uint32Array {
  const h = new Uint32Array(256 * c);
  for (let i = 0; i < src.length; i += c) for (let k = 0; k < c; k++) h[(k << 8) | src[i + k]!]!++;
  return h;
}

/** ImageOps.autocontrast (cutoff 0): per channel, maps [min, max] linearly onto [0, 255] (a constant channel is kept). */
export function autocontrast(src: Uint8Array, dst: Uint8Array, shape: ImageShape): void {
  const c = shape.channels;
  const h = channelHistograms(src, c);
  const lut = new Uint8Array(256 * c);
  for (let k = 0; k < c; k++) {
    const b = k << 8;
    let lo = 0;
    while (lo < 256 && h[b + lo] === 0) lo++;
    let hi = 255;
    while (hi >= 0 && h[b + hi] === 0) hi--;
    if (hi <= lo) {
      for (let i = 0; i < 256; i++) lut[b + i] = i;
    } else {
      const scale = 255 / (hi - lo);
      const offset = -lo * scale;
      for (let i = 0; i < 256; i++) {
        const v = Math.trunc(i * scale + offset);
        lut[b + i] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
  applyChannelLuts(src, dst, lut, c);
}

/**
 * ImageOps.equalize: per channel, the histogram-equalising table of PIL, step = (pixels − count of the last used
 * level) // 255 and lut[i] = (step // 2 + pixels below i) // step; identity for a channel with < 2 levels or step 0.
 * (Pillow 12, the fixture's; Pillow before 10 divided by 256, which the 2020-era references ran: a table at most
 * one level apart.)
 */
export function equalize(src: Uint8Array, dst: Uint8Array, shape: ImageShape): void {
  const c = shape.channels;
  const h = channelHistograms(src, c);
  const lut = new Uint8Array(256 * c);
  for (let k = 0; k < c; k++) {
    const b = k << 8;
    let used = 0;
    let total = 0;
    let last = 0;
    for (let i = 0; i < 256; i++) {
      const v = h[b + i]!;
      if (v > 0) {
        used++;
        last = v;
      }
      total += v;
    }
    const step = Math.floor((total - last) / 255);
    if (used <= 1 || step === 0) {
      for (let i = 0; i < 256; i++) lut[b + i] = i;
    } else {
      let n = Math.floor(step / 2);
      for (let i = 0; i < 256; i++) {
        const v = Math.floor(n / step);
        lut[b + i] = v > 255 ? 255 : v;
        n += h[b + i]!;
      }
    }
  }
  applyChannelLuts(src, dst, lut, c);
}

/**
 * Image.blend(degenerate, image, factor) as PIL computes it: in float32, truncated; clipped to [0, 255] only when
 * the factor extrapolates (outside [0, 1]). `degenerate` is an image of the same size.
 */
export function blend(degenerate: Uint8Array, src: Uint8Array, dst: Uint8Array, factor: number): void {
  const f = Math.fround(factor);
  const fr = Math.fround;
  if (f >= 0 && f <= 1) {
    for (let i = 0; i < src.length; i++) {
      const a = degenerate[i]!;
      dst[i] = Math.trunc(fr(a + fr(f * (src[i]! - a))));
    }
  } else {
    for (let i = 0; i < src.length; i++) {
      const a = degenerate[i]!;
      const t = fr(a + fr(f * (src[i]! - a)));
      dst[i] = t <= 0 ? 0 : t >= 255 ? 255 : Math.trunc(t);
    }
  }
}

/** PIL's RGB → L conversion: (R·19595 + G·38470 + B·7471 + 0x8000) >> 16. */
export function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16;
}

/** ImageEnhance.Color: blend with the grey image (L converted back to RGB). factor 1 is the identity, 0 grey. */
export function color(src: Uint8Array, dst: Uint8Array, shape: ImageShape, factor: number, scratch: Uint8Array = new Uint8Array(src.length)): void {
  checkRgb(shape);
  for (let i = 0; i < src.length; i += 3) {
    const l = luma(src[i]!, src[i + 1]!, src[i + 2]!);
    scratch[i] = scratch[i + 1] = scratch[i + 2] = l;
  }
  blend(scratch, src, dst, factor);
}

/** ImageEnhance.Contrast: blend with a flat image at the rounded mean of the grey image. */
export function contrast(src: Uint8Array, dst: Uint8Array, shape: ImageShape, factor: number, scratch: Uint8Array = new Uint8Array(src.length)): void {
  checkRgb(shape);
  let sum = 0;
  const n = src.length / 3;
  for (let i = 0; i < src.length; i += 3) sum += luma(src[i]!, src[i + 1]!, src[i + 2]!);
  scratch.fill(Math.trunc(sum / n + 0.5), 0, src.length);
  blend(scratch, src, dst, factor);
}

/** ImageEnhance.Brightness: blend with black. */
export function brightness(src: Uint8Array, dst: Uint8Array, factor: number, scratch: Uint8Array = new Uint8Array(src.length)): void {
  scratch.fill(0, 0, src.length);
  blend(scratch, src, dst, factor);
}

/**
 * ImageFilter.SMOOTH as PIL applies it: the 3×3 kernel (1 1 1 / 1 5 1 / 1 1 1)/13, rounded to nearest (sums never
 * fall on a half, so the integer form is exact); the border rows and columns are copied unchanged.
 */
export function smooth(src: Uint8Array, dst: Uint8Array, shape: ImageShape): void {
  const { height: h, width: w, channels: c } = shape;
  const row = w * c;
  dst.set(src.subarray(0, row), 0);
  dst.set(src.subarray((h - 1) * row, h * row), (h - 1) * row);
  for (let y = 1; y < h - 1; y++) {
    const o = y * row;
    for (let q = 0; q < c; q++) {
      dst[o + q] = src[o + q]!;
      dst[o + (w - 1) * c + q] = src[o + (w - 1) * c + q]!;
    }
    for (let i = o + c; i < o + row - c; i++) {
      const sum =
        src[i - row - c]! + src[i - row]! + src[i - row + c]! + src[i - c]! + 5 * src[i]! + src[i + c]! + src[i + row - c]! + src[i + row]! + src[i + row + c]!;
      dst[i] = Math.floor((2 * sum + 13) / 26);
    }
  }
}

/** ImageEnhance.Sharpness: blend with the SMOOTH-filtered image (factor > 1 sharpens). */
export function sharpness(src: Uint8Array, dst: Uint8Array, shape: ImageShape, factor: number, scratch: Uint8Array = new Uint8Array(src.length)): void {
  smooth(src, scratch, shape);
  blend(scratch, src, dst, factor);
}

/** C's FLOOR of PIL's transforms: floor for negatives, truncation otherwise (the same thing). */
const FIX = (v: number) => Math.floor(v * 65536 + 0.5);

/**
 * Image.transform(size, AFFINE, m, NEAREST, fillcolor=fill): a pure translation/scale (b = d = 0) is evaluated in
 * double precision, anything else in PIL's 16.16 fixed point (`affine_fixed`), which decides a few boundary pixels.
 */
export function affineNearest(src: Uint8Array, dst: Uint8Array, shape: ImageShape, m: Affine, fill: Fill): void {
  checkRgb(shape);
  const { height: h, width: w } = shape;
  const [a, b, c, d, e, f] = m;
  if (b === 0 && d === 0) {
    for (let y = 0; y < h; y++) {
      const yi = Math.floor(e * (y + 0.5) + f);
      for (let x = 0; x < w; x++) {
        const xi = Math.floor(a * (x + 0.5) + c);
        const o = (y * w + x) * 3;
        if (yi >= 0 && yi < h && xi >= 0 && xi < w) {
          const s = (yi * w + xi) * 3;
          dst[o] = src[s]!;
          dst[o + 1] = src[s + 1]!;
          dst[o + 2] = src[s + 2]!;
        } else {
          dst[o] = fill[0];
          dst[o + 1] = fill[1];
          dst[o + 2] = fill[2];
        }
      }
    }
    return;
  }
  const a0 = FIX(a);
  const a1 = FIX(b);
  const a3 = FIX(d);
  const a4 = FIX(e);
  let a2 = FIX(c + a * 0.5 + b * 0.5);
  let a5 = FIX(f + d * 0.5 + e * 0.5);
  for (let y = 0; y < h; y++) {
    let xx = a2;
    let yy = a5;
    for (let x = 0; x < w; x++) {
      const xi = xx >> 16;
      const yi = yy >> 16;
      const o = (y * w + x) * 3;
      if (xi >= 0 && xi < w && yi >= 0 && yi < h) {
        const s = (yi * w + xi) * 3;
        dst[o] = src[s]!;
        dst[o + 1] = src[s + 1]!;
        dst[o + 2] = src[s + 2]!;
      } else {
        dst[o] = fill[0];
        dst[o + 1] = fill[1];
        dst[o + 2] = fill[2];
      }
      xx += a0;
      yy += a3;
    }
    a2 += a1;
    a5 += a4;
  }
}

/** PIL's cubic convolution (a = −1) through v1..v4 at fraction d ∈ [0, 1). */
function cubic(v1: number, v2: number, v3: number, v4: number, d: number): number {
  const p1 = v2;
  const p2 = -v1 + v3;
  const p3 = 2 * (v1 - v2) + v3 - v4;
  const p4 = -v1 + v2 - v3 + v4;
  return p1 + d * (p2 + d * (p3 + d * p4));
}

/**
 * Image.transform(size, AFFINE, m, BICUBIC, fillcolor=fill) (DKL's AutoAugment shears): PIL's generic transform,
 * 4×4 neighbourhood with edge-clamped columns, rows past the bottom edge repeating the last row read, truncated.
 */
export function affineBicubic(src: Uint8Array, dst: Uint8Array, shape: ImageShape, m: Affine, fill: Fill): void {
  checkRgb(shape);
  const { height: h, width: w } = shape;
  const [a, b, c, d, e, f] = m;
  const xclip = (x: number) => (x < 0 ? 0 : x < w ? x : w - 1);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 3;
      let xin = a * (x + 0.5) + b * (y + 0.5) + c;
      let yin = d * (x + 0.5) + e * (y + 0.5) + f;
      if (xin < 0 || xin >= w || yin < 0 || yin >= h) {
        dst[o] = fill[0];
        dst[o + 1] = fill[1];
        dst[o + 2] = fill[2];
        continue;
      }
      xin -= 0.5;
      yin -= 0.5;
      let xs = Math.floor(xin);
      let ys = Math.floor(yin);
      const dx = xin - xs;
      const dy = yin - ys;
      xs--;
      ys--;
      const x0 = xclip(xs) * 3;
      const x1 = xclip(xs + 1) * 3;
      const x2 = xclip(xs + 2) * 3;
      const x3 = xclip(xs + 3) * 3;
      const r0 = (ys < 0 ? 0 : ys < h ? ys : h - 1) * w * 3;
      // Rows past the bottom edge repeat the previous row's value (v2 = v1, ...); rows above are clamped.
      const ok1 = ys + 1 >= 0 && ys + 1 < h;
      const ok2 = ys + 2 >= 0 && ys + 2 < h;
      const ok3 = ys + 3 >= 0 && ys + 3 < h;
      for (let q = 0; q < 3; q++) {
        let r = r0 + q;
        const v1 = cubic(src[r + x0]!, src[r + x1]!, src[r + x2]!, src[r + x3]!, dx);
        r = (ys + 1) * w * 3 + q;
        const v2 = ok1 ? cubic(src[r + x0]!, src[r + x1]!, src[r + x2]!, src[r + x3]!, dx) : v1;
        r += w * 3;
        const v3 = ok2 ? cubic(src[r + x0]!, src[r + x1]!, src[r + x2]!, src[r + x3]!, dx) : v2;
        r += w * 3;
        const v4 = ok3 ? cubic(src[r + x0]!, src[r + x1]!, src[r + x2]!, src[r + x3]!, dx) : v3;
        const v = cubic(v1, v2, v3, v4, dy);
        dst[o + q] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
      }
    }
  }
}

/** Python's round(x, 15), which PIL applies to the rotation matrix's cosine and sine. */
function round15(x: number): number {
  return Number(x.toFixed(15));
}

/** The affine data of Image.rotate(angle) about the image centre (w/2, h/2), angle in degrees counter-clockwise. */
export function rotationMatrix(angle: number, shape: ImageShape): Affine {
  const t = -((((angle % 360) + 360) % 360) * Math.PI) / 180;
  const cos = round15(Math.cos(t));
  const sin = round15(Math.sin(t));
  const cx = shape.width / 2;
  const cy = shape.height / 2;
  return [cos, sin, cos * -cx + sin * -cy + cx, -sin, cos, -sin * -cx + cos * -cy + cy];
}

/** Image.rotate(angle, NEAREST, fillcolor=fill): 0° is an exact copy, as in PIL's fast path. */
export function rotate(src: Uint8Array, dst: Uint8Array, shape: ImageShape, angle: number, fill: Fill): void {
  const a = ((angle % 360) + 360) % 360;
  if (a === 0) {
    dst.set(src);
    return;
  }
  affineNearest(src, dst, shape, rotationMatrix(angle, shape), fill);
}

/**
 * torchvision's `_get_inverse_affine_matrix(center, angle, translate, scale, shear)` (angles in degrees), the data
 * that `F.affine` hands to PIL for a PIL image.
 */
export function inverseAffine(
  center: readonly [number, number],
  angle: number,
  translate: readonly [number, number],
  scale: number,
  shear: readonly [number, number],
): Affine {
  const rad = Math.PI / 180;
  const rot = angle * rad;
  const sx = shear[0] * rad;
  const sy = shear[1] * rad;
  const [cx, cy] = center;
  const [tx, ty] = translate;
  const a = Math.cos(rot - sy) / Math.cos(sy);
  const b = (-Math.cos(rot - sy) * Math.tan(sx)) / Math.cos(sy) - Math.sin(rot);
  const c = Math.sin(rot - sy) / Math.cos(sy);
  const d = (-Math.sin(rot - sy) * Math.tan(sx)) / Math.cos(sy) + Math.cos(rot);
  const m = [d / scale, -b / scale, 0, -c / scale, a / scale, 0];
  m[2]! += m[0]! * (-cx - tx) + m[1]! * (-cy - ty);
  m[5]! += m[3]! * (-cx - tx) + m[4]! * (-cy - ty);
  m[2]! += cx;
  m[5]! += cy;
  return m as unknown as Affine;
}

/**
 * Cutout as DKL's `Cutout` and DM-Improves-AT's `CutoutDefault`: the square [cy − ⌊L/2⌋, cy + ⌊L/2⌋) ×
 * [cx − ⌊L/2⌋, cx + ⌊L/2⌋), clipped to the image, is set to `value` (0: both multiply the [0, 1] tensor by a mask).
 * The centre (cy, cx) is any pixel, so the square can be partly outside.
 */
export function cutout(img: Uint8Array, shape: ImageShape, cy: number, cx: number, length: number, value = 0): void {
  const { height: h, width: w, channels: c } = shape;
  const half = Math.floor(length / 2);
  const y1 = Math.max(0, Math.min(h, cy - half));
  const y2 = Math.max(0, Math.min(h, cy + half));
  const x1 = Math.max(0, Math.min(w, cx - half));
  const x2 = Math.max(0, Math.min(w, cx + half));
  for (let y = y1; y < y2; y++) img.fill(value, (y * w + x1) * c, (y * w + x2) * c);
}

/** Fills the rectangle rows [top, top + hh) × columns [left, left + ww) with one value per channel. */
export function fillRect(img: Uint8Array, shape: ImageShape, top: number, left: number, hh: number, ww: number, fill: Fill): void {
  const { width: w } = shape;
  for (let y = top; y < top + hh; y++) {
    for (let x = left; x < left + ww; x++) {
      const o = (y * w + x) * 3;
      img[o] = fill[0];
      img[o + 1] = fill[1];
      img[o + 2] = fill[2];
    }
  }
}

/** Mirrors left-right (torchvision's RandomHorizontalFlip). */
export function flipHorizontal(src: Uint8Array, dst: Uint8Array, shape: ImageShape): void {
  const { height: h, width: w, channels: c } = shape;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const s = (y * w + (w - 1 - x)) * c;
      const o = (y * w + x) * c;
      for (let q = 0; q < c; q++) dst[o + q] = src[s + q]!;
    }
  }
}

/**
 * RandomCrop(padding) at offset (dy, dx) of the zero-padded image, then mirrored when `flip`, in one pass:
 * out[y][x] = padded[y + dy][(flip ? W−1−x : x) + dx] (the uint8 form of batches.ts's cropFlip).
 */
export function cropFlipU8(src: Uint8Array, dst: Uint8Array, shape: ImageShape, dy: number, dx: number, flip: boolean, pad: number): void {
  const { height: h, width: w, channels: c } = shape;
  const row = w * c;
  for (let y = 0; y < h; y++) {
    const sy = y + dy - pad;
    const o = y * row;
    if (sy < 0 || sy >= h) {
      dst.fill(0, o, o + row);
      continue;
    }
    const srow = sy * row;
    for (let x = 0; x < w; x++) {
      const sx = (flip ? w - 1 - x : x) + dx - pad;
      const d = o + x * c;
      if (sx < 0 || sx >= w) {
        for (let k = 0; k < c; k++) dst[d + k] = 0;
      } else {
        const s = srow + sx * c;
        for (let k = 0; k < c; k++) dst[d + k] = src[s + k]!;
      }
    }
  }
}

/**
 * Shifts the image content: out[y][x] = src[y − dy][x − dx] where that lies inside, else `fill`. RandomCrop(32,
 * padding=4) with crop offset (oy, ox) in the padded image is shift(4 − oy, 4 − ox) with fill 0.
 */
export function shift(src: Uint8Array, dst: Uint8Array, shape: ImageShape, dy: number, dx: number, fill: Fill = [0, 0, 0]): void {
  affineNearest(src, dst, shape, [1, 0, -dx, 0, 1, -dy], fill);
}
