/**
 * FAB's projection step (Croce & Hein, ICML 2020, Sec. 3): the minimal-norm move from a point p onto the
 * hyperplane {z : ⟨w, z⟩ = b} while staying in the box [0, 1]^d. Plain JS on float64, one example at a time:
 * it runs on the CPU beside the model and is exact, not iterative.
 *
 * Derivation (ours). Let gap = b − ⟨w, p⟩ and σ = sign(gap); coordinate i can usefully move only in direction
 * dir_i = σ·sign(w_i), by at most u_i (distance to the box face on that side). With a budget δ on the norm, the
 * largest reachable |⟨w, d⟩| is g(δ) = Σ s_i · min(δ, t_i), where
 *   L-inf: |d_i| ≤ δ                       ⇒ t_i = u_i,        s_i = |w_i|      (d_i = dir_i · min(δ, t_i))
 *   L2:    KKT gives d_i = clip(λ w_i, box) ⇒ t_i = u_i/|w_i|, s_i = w_i²      (d_i = dir_i · |w_i| · min(λ, t_i))
 * g is continuous, increasing and piecewise linear with kinks at the t_i, so the smallest δ with g(δ) = |gap|
 * is found by a quickselect over the kinks (expected O(d)) and solving the one linear piece exactly. If even the
 * whole box cannot reach the hyperplane (g(∞) < |gap|), the best box corner in the right direction is returned,
 * which is what the reference implementation does too.
 *   L1:    a fractional knapsack: moving coordinate i by one unit of |d_i| buys |w_i| of |⟨w, d⟩|, so the cheapest
 *          move fills the coordinates of largest |w_i| to their faces in turn, the last one partly
 *          (projectL1; the reference's projection_l1 sorts 1/|w| and bisects its cumulative sums the same way).
 */
import type { Norm } from './types.js';

/**
 * Writes into `out` the displacement d of minimal `norm` with ⟨w, p + d⟩ = b and p + d ∈ [0, 1]^d (or the move
 * to the best box corner when that set is empty). Returns ‖d‖ in that norm.
 */
export function projectOntoHyperplaneBox(
  p: ArrayLike<number>,
  w: ArrayLike<number>,
  b: number,
  norm: Norm,
  out: Float64Array,
  work: ProjectionWorkspace = projectionWorkspace(p.length),
): number {
  const n = p.length;
  let wp = 0;
  for (let i = 0; i < n; i++) wp += w[i]! * p[i]!;
  const gap = b - wp;
  out.fill(0);
  if (gap === 0 || !Number.isFinite(gap)) return 0;
  const sigma = gap > 0 ? 1 : -1;
  const r = Math.abs(gap);
  if (norm === 'l1') return projectL1(p, w, sigma, r, out, work);

  // Only entries with w_i ≠ 0 are written and read (s_i > 0 marks them), so the workspace needs no clearing.
  const { t, s, idx } = work;
  const linf = norm === 'linf';
  let m = 0;
  let capacity = 0;
  for (let i = 0; i < n; i++) {
    const wi = w[i]!;
    if (wi === 0) {
      s[i] = 0;
      continue;
    }
    const pi = p[i]!;
    const room = Math.max(0, sigma * wi > 0 ? 1 - pi : pi);
    const aw = Math.abs(wi);
    const ti = linf ? room : room / aw;
    const si = linf ? aw : aw * aw;
    t[i] = ti;
    s[i] = si;
    capacity += si * ti;
    idx[m++] = i;
  }

  if (capacity <= r) return move(n, w, sigma, linf, Infinity, work, out);

  // Quickselect for the kink interval holding δ*: expected O(d), no sort. `saturated` = Σ s_i t_i over
  // coordinates known to have t_i < δ*, `slope` = Σ s_i over those known to have t_i ≥ δ*.
  let saturated = 0;
  let slope = 0;
  let lo = 0;
  let hi = m; // candidates: idx[lo, hi)
  while (hi > lo) {
    const pivot = t[idx[lo + ((hi - lo) >> 1)]!]!;
    // Three-way partition of the candidates: [lo, a) t < pivot, [a, b) t = pivot, [b, hi) t > pivot.
    let a = lo;
    let b = lo;
    let c = hi;
    let sumBelow = 0; // Σ s t over t < pivot
    let sAtOrAbove = 0; // Σ s over t ≥ pivot
    while (b < c) {
      const k = idx[b]!;
      const tk = t[k]!;
      if (tk < pivot) {
        idx[b] = idx[a]!;
        idx[a] = k;
        a++;
        b++;
        sumBelow += s[k]! * tk;
      } else if (tk > pivot) {
        c--;
        idx[b] = idx[c]!;
        idx[c] = k;
        sAtOrAbove += s[k]!;
      } else {
        b++;
        sAtOrAbove += s[k]!;
      }
    }
    const gPivot = saturated + sumBelow + pivot * (slope + sAtOrAbove);
    if (gPivot >= r) {
      // δ* ≤ pivot: every candidate with t ≥ pivot is unsaturated at δ*.
      slope += sAtOrAbove;
      hi = a;
    } else {
      // δ* > pivot: every candidate with t ≤ pivot is saturated at δ*.
      saturated += sumBelow;
      for (let j = a; j < b; j++) saturated += s[idx[j]!]! * t[idx[j]!]!;
      lo = b;
    }
  }
  return move(n, w, sigma, linf, (r - saturated) / slope, work, out);
}

/**
 * Writes d_i = dir_i · min(δ, t_i) (times |w_i| for L2; dir_i·|w_i| = σ·w_i exactly) into `out` for the
 * coordinates that can move (s_i > 0), and returns ‖d‖ (δ = ∞: the whole box, i.e. the best corner).
 */
function move(n: number, w: ArrayLike<number>, sigma: number, linf: boolean, delta: number, work: ProjectionWorkspace, out: Float64Array): number {
  const { t, s } = work;
  let acc = 0;
  for (let i = 0; i < n; i++) {
    if (!(s[i]! > 0)) continue;
    const wi = w[i]!;
    const ti = t[i]!;
    const di = (linf ? (sigma * wi > 0 ? 1 : -1) : sigma * wi) * (delta < ti ? delta : ti);
    out[i] = di;
    acc = linf ? Math.max(acc, Math.abs(di)) : acc + di * di;
  }
  return linf ? acc : Math.sqrt(acc);
}

/**
 * The L1 case: coordinates by |w_i| descending (quickselect on the threshold, as above), each moved to its box
 * face (room_i) while Σ |w_i|·room_i < r, the coordinate where it is reached moved by what is left / |w_i|.
 * If the whole box falls short, every coordinate goes to its face (the reference's box corner).
 */
function projectL1(p: ArrayLike<number>, w: ArrayLike<number>, sigma: number, r: number, out: Float64Array, work: ProjectionWorkspace): number {
  const n = p.length;
  const { t, s, idx } = work;
  let m = 0;
  let capacity = 0;
  for (let i = 0; i < n; i++) {
    const wi = w[i]!;
    if (wi === 0) continue;
    const pi = p[i]!;
    // t: the rate |w_i|; s: what moving coordinate i to its face buys.
    t[i] = Math.abs(wi);
    s[i] = Math.max(0, sigma * wi > 0 ? 1 - pi : pi) * t[i]!;
    capacity += s[i]!;
    idx[m++] = i;
  }
  const dirOf = (i: number) => (sigma * w[i]! > 0 ? 1 : -1);
  let size = 0;
  if (capacity <= r) {
    for (let k = 0; k < m; k++) {
      const i = idx[k]!;
      out[i] = (dirOf(i) * s[i]!) / t[i]!;
      size += Math.abs(out[i]!);
    }
    return size;
  }
  // Quickselect on the rate: `bought` = Σ s over coordinates known to be filled (rate above the threshold).
  let bought = 0;
  let lo = 0;
  let hi = m;
  while (hi - lo > 1) {
    const pivot = t[idx[lo + ((hi - lo) >> 1)]!]!;
    // [lo, a) rate > pivot, [a, b) rate = pivot, [b, hi) rate < pivot.
    let a = lo;
    let b = lo;
    let c = hi;
    let sumAbove = 0;
    let sumAt = 0;
    while (b < c) {
      const k = idx[b]!;
      const tk = t[k]!;
      if (tk > pivot) {
        idx[b] = idx[a]!;
        idx[a] = k;
        a++;
        b++;
        sumAbove += s[k]!;
      } else if (tk < pivot) {
        c--;
        idx[b] = idx[c]!;
        idx[c] = k;
      } else {
        b++;
        sumAt += s[k]!;
      }
    }
    if (bought + sumAbove >= r) hi = a;
    else if (bought + sumAbove + sumAt >= r) {
      // The budget runs out among the coordinates at the pivot rate: fill them in turn.
      bought += sumAbove;
      fill(idx, lo, a);
      for (let j = a; j < b; j++) {
        const i = idx[j]!;
        const take = Math.min(s[i]!, r - bought);
        bought += take;
        out[i] = (dirOf(i) * take) / t[i]!;
        if (bought >= r) break;
      }
      return l1Of(out);
    } else {
      bought += sumAbove + sumAt;
      fill(idx, lo, b);
      lo = b;
    }
  }
  // One candidate left: it takes what is still missing.
  if (hi > lo) {
    const i = idx[lo]!;
    out[i] = (dirOf(i) * Math.min(s[i]!, r - bought)) / t[i]!;
  }
  return l1Of(out);

  function fill(order: Int32Array, from: number, to: number): void {
    for (let j = from; j < to; j++) {
      const i = order[j]!;
      out[i] = (dirOf(i) * s[i]!) / t[i]!;
    }
  }
}

function l1Of(v: Float64Array): number {
  let acc = 0;
  for (let i = 0; i < v.length; i++) acc += Math.abs(v[i]!);
  return acc;
}

/** Scratch arrays of projectOntoHyperplaneBox for vectors of length d, reused across calls. */
export interface ProjectionWorkspace {
  t: Float64Array;
  s: Float64Array;
  idx: Int32Array;
}

export function projectionWorkspace(d: number): ProjectionWorkspace {
  return { t: new Float64Array(d), s: new Float64Array(d), idx: new Int32Array(d) };
}

/** ‖v‖∞, ‖v‖₂ or ‖v‖₁. */
export function normOf(v: ArrayLike<number>, norm: Norm): number {
  let acc = 0;
  if (norm === 'l1') {
    for (let i = 0; i < v.length; i++) acc += Math.abs(v[i]!);
    return acc;
  }
  if (norm === 'linf') {
    for (let i = 0; i < v.length; i++) acc = Math.max(acc, Math.abs(v[i]!));
    return acc;
  }
  for (let i = 0; i < v.length; i++) acc += v[i]! * v[i]!;
  return Math.sqrt(acc);
}

/** ‖a − b‖ over the first a.length entries. */
export function distance(a: ArrayLike<number>, b: ArrayLike<number>, norm: Norm): number {
  let acc = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    acc = norm === 'linf' ? Math.max(acc, d) : norm === 'l1' ? acc + d : acc + d * d;
  }
  return norm === 'l2' ? Math.sqrt(acc) : acc;
}
