/**
 * The L1 variant of the Square attack as AutoAttack runs it (fra31/auto-attack square.py, its L1 branch, from
 * Croce et al. 2022, "Sparse-RS" / "Mind the box"): the same centre-surround windows as L2 (square-l2.ts) with
 * weights falling off as 1/r⁴ and unit L1 norm, the same start grid, and proposals that move the L1 mass of a
 * second window into the first; every point is then projected onto the L1 ball ∩ box (l1ProjectHost, the exact
 * projection the device-side l1Projection in project.ts computes), at radius eps·(1 − 10⁻⁶) as the reference
 * does so that float32 storage stays inside the ball. One example at a time on the host, in float64; random
 * numbers consumed in the reference's order.
 */
import { centreSurround, intOf, signOf, type UniformSource } from './square-l2.js';

/** The reference's radius margin for Square's L1 points. */
export const SQUARE_L1_SHRINK = 1 - 1e-6;

/**
 * out = x + δ + r with r the reference's L1_projection: the point of the L1 ball of radius eps around x and of
 * [0, 1]^d nearest x + δ (x in the box). Coordinate i gives up the part of δ_i outside the box (lo_i) and a
 * common amount α of |δ_i| (at most |δ_i|): r_i = −sign(δ_i)·clip(α, lo_i, |δ_i|), α the smallest value whose
 * total reduction reaches ‖δ‖₁ − eps, found by walking the sorted kinks. `work` is scratch of length 2·δ.length.
 */
export function l1ProjectHost(x: ArrayLike<number>, delta: Float64Array, eps: number, out: Float32Array, work: Float64Array): void {
  const d = delta.length;
  const lo = work.subarray(0, d);
  const hi = work.subarray(d, 2 * d);
  let forced = 0;
  let size = 0;
  for (let i = 0; i < d; i++) {
    const v = x[i]! + delta[i]!;
    lo[i] = Math.max(0, v - 1, -v);
    hi[i] = Math.abs(delta[i]!);
    forced += lo[i]!;
    size += hi[i]!;
  }
  const needed = size - eps;
  let alpha = 0;
  if (forced < needed) {
    // Events in ascending order: at lo_i a coordinate starts giving (+1 to the slope), at hi_i it stops (−1).
    const los = Float64Array.from(lo).sort();
    const his = Float64Array.from(hi).sort();
    let a = 0;
    let b = 0;
    let at = 0;
    let total = forced;
    let slope = 0;
    alpha = Infinity;
    while (b < d) {
      const starts = a < d && los[a]! <= his[b]!;
      const next = starts ? los[a]! : his[b]!;
      if (slope > 0) {
        const reached = total + slope * (next - at);
        if (reached >= needed) {
          alpha = at + (needed - total) / slope;
          break;
        }
        total = reached;
      }
      at = next;
      if (starts) {
        slope++;
        a++;
      } else {
        slope--;
        b++;
      }
    }
  }
  for (let i = 0; i < d; i++) {
    const give = Math.min(Math.max(alpha, lo[i]!), hi[i]!);
    const di = delta[i]!;
    out[i] = Math.min(1, Math.max(0, x[i]! + (di - Math.sign(di) * give)));
  }
}

/**
 * One L1 proposal for one example (the reference's L1 loop body): δ = xBest − x (in `delta`); window 1 at (vh, vw)
 * gets, per channel, its old direction (unit L1) plus a fresh pattern with a random sign, rescaled to L1 mass
 * (max(eps − ‖δ‖₁, 0)/C + channel c's mass in both windows)·C (the reference's formula); window 2 at (vh2, vw2)
 * is emptied. The caller projects the result (l1ProjectHost). Window offsets ⌊u·(H − s)⌋ as in the reference.
 */
export function l1ProposalDelta(delta: Float64Array, eps: number, H: number, W: number, C: number, s: number, rng: UniformSource): void {
  const vh = intOf(rng.next(), H - s);
  const vw = intOf(rng.next(), W - s);
  const vh2 = intOf(rng.next(), H - s);
  const vw2 = intOf(rng.next(), W - s);
  const pattern = centreSurround(s, rng, 'l1');
  const inWin = (h: number, w: number, oh: number, ow: number) => h >= oh && h < oh + s && w >= ow && w < ow + s;

  let image = 0;
  const windows = new Float64Array(C);
  const perChannel = new Float64Array(C);
  for (let h = 0; h < H; h++) {
    for (let w = 0; w < W; w++) {
      const a = inWin(h, w, vh, vw);
      const b = inWin(h, w, vh2, vw2);
      for (let c = 0; c < C; c++) {
        const v = Math.abs(delta[(h * W + w) * C + c]!);
        image += v;
        if (a || b) windows[c]! += v;
        if (a) perChannel[c]! += v;
      }
    }
  }
  const fresh = new Float64Array(s * s);
  const updates: Float64Array[] = [];
  for (let c = 0; c < C; c++) {
    const sign = signOf(rng.next());
    const old = perChannel[c]! + 1e-12;
    let size = 0;
    for (let r = 0; r < s; r++) {
      for (let q = 0; q < s; q++) {
        const v = sign * pattern[r * s + q]! + delta[((vh + r) * W + vw + q) * C + c]! / old;
        fresh[r * s + q] = v;
        size += Math.abs(v);
      }
    }
    const target = (Math.max(eps - image, 0) / C + windows[c]!) * C;
    const scale = target / (size + 1e-12);
    updates.push(fresh.map((v) => v * scale));
  }
  for (let r = 0; r < s; r++) for (let q = 0; q < s; q++) for (let c = 0; c < C; c++) delta[((vh2 + r) * W + vw2 + q) * C + c] = 0;
  for (let c = 0; c < C; c++) {
    const u = updates[c]!;
    for (let r = 0; r < s; r++) for (let q = 0; q < s; q++) delta[((vh + r) * W + vw + q) * C + c] = u[r * s + q]!;
  }
}
