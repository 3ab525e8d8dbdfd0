/**
 * The L2 variant of the Square attack (Andriushchenko et al., ECCV 2020, Sec. 3.2 and Alg. 3): perturbations are
 * built from "centre-surround" s×s windows (two rectangles of opposite sign whose weights fall off as 1/r²
 * around their centres), the initial perturbation is a grid of such windows, and each proposal moves the
 * perturbation mass of a second random window into the first, so ‖δ‖₂ stays at eps.
 * One example at a time on flat NHWC Float32Arrays; randomness from the caller's uniform stream, consumed in
 * the reference's order (fra31/auto-attack square.py), so the same numbers give the same perturbations.
 */

/** Anything that hands out uniform numbers in [0, 1) (SeededRng does). */
export interface UniformSource {
  next(): number;
}

/** −1 or +1 from one uniform number, as the reference's sign(2u − 1). */
export function signOf(u: number): number {
  return u < 0.5 ? -1 : 1;
}

/** Integer in [0, n) from one uniform number, as the reference's ⌊u·n⌋ (0 for n = 0). */
export function intOf(u: number, n: number): number {
  return Math.floor(u * n);
}

/** The norm a window pattern is built for: L2 (this file) or L1 (square-l1.ts, the same shapes). */
export type PatternNorm = 'l2' | 'l1';

/**
 * Rows × cols matrix of nested rectangles around the centre, rectangle k (side 2k + 1) adding 1/(k + 1)²;
 * unit Frobenius norm (a zero-size matrix for rows = 0). For L1 (the reference's L1 branch): 1/(k + 1)⁴, unit L1 norm.
 */
export function nestedRectangles(rows: number, cols: number, norm: PatternNorm = 'l2'): Float64Array {
  const m = new Float64Array(rows * cols);
  if (rows === 0 || cols === 0) return m;
  const cr = Math.floor(rows / 2);
  const cc = Math.floor(cols / 2);
  const rings = Math.max(cr, cc) + 1;
  for (let k = 0; k < rings; k++) {
    const r0 = Math.max(cr - k, 0);
    const r1 = Math.min(cr - k + 2 * k + 1, rows);
    const c0 = Math.max(cc - k, 0);
    const c1 = Math.min(cc - k + 2 * k + 1, cols);
    const weight = norm === 'l2' ? 1 / ((k + 1) * (k + 1)) : 1 / (k + 1) ** 4;
    for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) m[r * cols + c]! += weight;
  }
  return unit(m, norm);
}

/**
 * The s×s window pattern: the top half is +nestedRectangles, the bottom half −nestedRectangles, unit norm,
 * transposed with probability 1/2 (so the two halves are left/right as often as top/bottom).
 */
export function centreSurround(s: number, rng: UniformSource, norm: PatternNorm = 'l2'): Float64Array {
  const top = nestedRectangles(Math.floor(s / 2), s, norm);
  const bottom = nestedRectangles(s - Math.floor(s / 2), s, norm);
  const m = new Float64Array(s * s);
  m.set(top);
  for (let j = 0; j < bottom.length; j++) m[top.length + j] = -bottom[j]!;
  unit(m, norm);
  if (rng.next() > 0.5) {
    const t = new Float64Array(s * s);
    for (let r = 0; r < s; r++) for (let c = 0; c < s; c++) t[c * s + r] = m[r * s + c]!;
    return t;
  }
  return m;
}

/** Side of the L2 window for fraction p of an H×W image: round(√(p·H·W)), at least 3, odd, at most the image side. */
export function squareSideL2(p: number, h: number, w: number): number {
  let s = Math.max(Math.round(Math.sqrt(p * h * w)), 3);
  if (s % 2 === 0) s += 1;
  return Math.min(s, h, w);
}

/**
 * The starting perturbation of one example (written into `delta`, flat H×W×C, norm not yet fixed): a grid of
 * ⌊H/s⌋ × ⌊W/s⌋ centre-surround windows of side s = ⌊min(H, W)/5⌋ from offset ⌊(H − 5s)/2⌋, one random sign per
 * window and channel. As in the reference, a window that falls off the image still draws its numbers and adds
 * only its part inside (the reference adds nothing there, and fails for windows cut in two; none are on 32×32).
 */
export function l2InitDelta(delta: Float64Array, H: number, W: number, C: number, rng: UniformSource, norm: PatternNorm = 'l2'): void {
  delta.fill(0);
  const s = Math.max(Math.floor(Math.min(H, W) / 5), 1);
  const offH = Math.max(Math.floor((H - 5 * s) / 2), 0);
  const offW = Math.max(Math.floor((W - 5 * s) / 2), 0);
  for (let kh = 0, vh = offH; kh < Math.floor(H / s); kh++, vh += s) {
    for (let kw = 0, vw = offW; kw < Math.floor(W / s); kw++, vw += s) {
      const pattern = centreSurround(s, rng, norm);
      for (let c = 0; c < C; c++) {
        const sign = signOf(rng.next());
        for (let r = 0; r < s && vh + r < H; r++) {
          for (let q = 0; q < s && vw + q < W; q++) delta[((vh + r) * W + vw + q) * C + c]! += sign * pattern[r * s + q]!;
        }
      }
    }
  }
}

/**
 * One L2 proposal for one example, Alg. 3 of the paper: δ = xBest − x; the window at (vh, vw) gets, per channel,
 * its old direction plus a fresh centre-surround pattern, rescaled to carry that channel's mass in both windows
 * plus an equal share of any budget left below eps; the second window at (vh2, vw2) is emptied; the whole δ is
 * then rescaled to eps. Window offsets are ⌊u·(H − s)⌋ as in the reference.
 * Writes δ_new (norm eps before box clipping) into `delta`.
 */
export function l2ProposalDelta(delta: Float64Array, eps: number, H: number, W: number, C: number, s: number, rng: UniformSource): void {
  const vh = intOf(rng.next(), H - s);
  const vw = intOf(rng.next(), W - s);
  const vh2 = intOf(rng.next(), H - s);
  const vw2 = intOf(rng.next(), W - s);
  const pattern = centreSurround(s, rng);
  const inWin = (h: number, w: number, oh: number, ow: number) => h >= oh && h < oh + s && w >= ow && w < ow + s;

  let image = 0;
  const windows = new Float64Array(C);
  const perChannel = new Float64Array(C);
  for (let h = 0; h < H; h++) {
    for (let w = 0; w < W; w++) {
      const a = inWin(h, w, vh, vw);
      const b = inWin(h, w, vh2, vw2);
      for (let c = 0; c < C; c++) {
        const v = delta[(h * W + w) * C + c]!;
        image += v * v;
        if (a || b) windows[c]! += v * v;
        if (a) perChannel[c]! += v * v;
      }
    }
  }
  // Norm² of the new window in channel c: the budget still free below eps shared over channels, plus channel
  // c's own mass in the two windows being rearranged (the paper's (ε² − ‖δ‖²)/c + ‖δ_W,c‖², Alg. 3 line 8).
  const fresh = new Float64Array(s * s);
  const updates: Float64Array[] = [];
  for (let c = 0; c < C; c++) {
    const sign = signOf(rng.next());
    const old = Math.sqrt(perChannel[c]!) + 1e-12;
    let size = 0;
    for (let r = 0; r < s; r++) {
      for (let q = 0; q < s; q++) {
        const v = sign * pattern[r * s + q]! + delta[((vh + r) * W + vw + q) * C + c]! / old;
        fresh[r * s + q] = v;
        size += v * v;
      }
    }
    const target = Math.sqrt(Math.max(eps * eps - image, 0) / C + windows[c]!);
    const scale = target / (Math.sqrt(size) + 1e-12);
    updates.push(fresh.map((v) => v * scale));
  }
  for (let r = 0; r < s; r++) for (let q = 0; q < s; q++) for (let c = 0; c < C; c++) delta[((vh2 + r) * W + vw2 + q) * C + c] = 0;
  for (let c = 0; c < C; c++) {
    const u = updates[c]!;
    for (let r = 0; r < s; r++) for (let q = 0; q < s; q++) delta[((vh + r) * W + vw + q) * C + c] = u[r * s + q]!;
  }
}

/**
 * out = clip(x + eps·δ/‖δ‖₂, 0, 1) as float32 and within the eps-ball exactly: float32 rounding of a point on
 * the sphere can land a hair outside, so the step is shrunk until the stored point is inside.
 */
export function placeOnSphere(x: Float32Array, delta: Float64Array, eps: number, out: Float32Array): void {
  let size = 0;
  for (let j = 0; j < delta.length; j++) size += delta[j]! * delta[j]!;
  size = Math.sqrt(size);
  let scale = size > 0 ? eps / size : 0;
  for (let attempt = 0; ; attempt++) {
    let d2 = 0;
    for (let j = 0; j < delta.length; j++) {
      const v = Math.min(1, Math.max(0, x[j]! + scale * delta[j]!));
      out[j] = v;
      const diff = out[j]! - x[j]!;
      d2 += diff * diff;
    }
    if (Math.sqrt(d2) <= eps) return;
    if (attempt >= 20) {
      out.set(x); // never seen; keeps the contract (inside the ball) whatever happens
      return;
    }
    scale *= 1 - 1e-6 * 2 ** attempt;
  }
}

function unit(m: Float64Array, norm: PatternNorm = 'l2'): Float64Array {
  let size = 0;
  for (const v of m) size += norm === 'l2' ? v * v : Math.abs(v);
  if (norm === 'l2') size = Math.sqrt(size);
  if (size > 0) for (let j = 0; j < m.length; j++) m[j]! /= size;
  return m;
}
