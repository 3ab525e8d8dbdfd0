/**
 * Square Attack, L-inf, L2 and L1 (Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient black-box
 * adversarial attack via random search", ECCV 2020), as AutoAttack "standard" runs it: score-based random search
 * on the margin loss z_y − max_{j≠y} z_j, no gradients.
 *
 * Start: vertical stripes x + eps·(±1 per column and channel). Each iteration, every point that is still
 * classified correctly proposes one change: a random s×s window whose channels are each pushed to the opposite
 * face of the eps-box (x_best ± 2·eps, projected back onto the ball and [0, 1]); the proposal replaces x_best if
 * it lowers the margin or misclassifies. The window area is a fraction p of the image, p halving at iterations
 * 10, 50, 200, …, 8000 whatever the budget, as AutoAttack runs it (`resc_schedule=False`); `rescaleSchedule`
 * stretches that schedule to `steps` as the standalone Square code does by default. All randomness is a seeded
 * JS stream (or an injected `random` source), so a run is reproducible; one batched forward per iteration, on the
 * points not yet fooled only. The L2 version (square-l2.ts) and the L1 version (square-l1.ts) differ only in how the
 * start and the proposals are drawn.
 * Each point draws its own window position and signs (AutoAttack shares one draw across the batch: the same
 * distribution for every point, only the joint draw differs). Random numbers are consumed in the reference's
 * order (stripes per channel then column; vh, vw, then one sign per channel), and a window starts at one of the
 * H − s offsets ⌊u·(H − s)⌋ as in the reference (the last offset is never drawn; 0 when s = H), so with one
 * point and the same uniform stream both implementations make the same proposals (test/reference).
 */
import * as tf from '@tensorflow/tfjs';
import { labelsOf, logitsOf, readInputs, type Shape4 } from './host-model.js';
import { checkCount, checkNorm, checkRange, checkSeed } from './validate.js';
import { intOf, l2InitDelta, l2ProposalDelta, placeOnSphere, signOf, squareSideL2, type UniformSource } from './square-l2.js';
export type { UniformSource } from './square-l2.js';
import { l1ProjectHost, l1ProposalDelta, SQUARE_L1_SHRINK } from './square-l1.js';
import { deriveSeed, SeededRng } from '../rng.js';
import { restoredArray, type AttackState } from './progress.js';
import type { AttackResult, BaseAttackOptions, ModelFn, Norm } from './types.js';

export interface SquareOptions extends BaseAttackOptions {
  /**
   * Proposals per point and restart after the stripe initialisation (AutoAttack's n_queries: 5000), so a point
   * not fooled costs steps + 1 model evaluations.
   */
  steps?: number;
  /**
   * Stretch the p schedule (defined for 10,000 proposals) to `steps`, as the standalone Square code does
   * (`resc_schedule=True`). Default false: the fixed schedule AutoAttack uses in every version.
   */
  rescaleSchedule?: boolean;
  /** Source of uniform [0, 1) numbers replacing the seeded stream (replay tests feed the reference's numbers). */
  random?: UniformSource;
  /** Called after every iteration of every run (tests: replay the reference's accepted proposals). */
  onIteration?: IterationHook;
  /** Initial fraction of the image covered by the square (AutoAttack: 0.8). */
  pInit?: number;
  /** Independent runs on the points still robust, each with a fresh stripe start and full query budget. */
  restarts?: number;
}

/** What a test sees of each iteration of the random search. */
export type IterationHook = (info: { it: number; side: number; active: number[]; accepted: Uint8Array; margin: Float64Array; xBest: Float32Array }) => void;

export interface SquareResult extends AttackResult {
  /** Model evaluations of perturbed versions of each point, all restarts together (0 if misclassified clean). */
  queries: Int32Array;
}

const WHO = 'square';

/** The paper's step points (10,000 queries): after iteration t (0-based), p = pInit / div. */
const SCHEDULE: ReadonlyArray<readonly [number, number]> = [
  [8000, 512],
  [6000, 256],
  [4000, 128],
  [2000, 64],
  [1000, 32],
  [500, 16],
  [200, 8],
  [50, 4],
  [10, 2],
];

/**
 * Fraction of the image the square covers at iteration `it` (0-based, after the initialisation). Without
 * `rescale` (AutoAttack) the schedule is fixed; with it, iteration it of `steps` acts as ⌊it/steps·10000⌋.
 */
export function squareP(it: number, steps: number, pInit: number, rescale = false): number {
  const t = rescale ? Math.floor((it / steps) * 10000) : it;
  for (const [after, div] of SCHEDULE) if (t > after) return pInit / div;
  return pInit;
}

/** Python's round(): halves go to the even neighbour (the reference computes window sides with it). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Side of the square for fraction p of an H×W image: round(√(p·H·W)), at least 1, at most the image side. */
export function squareSide(p: number, h: number, w: number): number {
  return Math.min(Math.max(roundHalfEven(Math.sqrt(p * h * w)), 1), h, w);
}

/** z_y − max_{j≠y} z_j of each row of flat n×C logits. Positive means still classified correctly. */
function marginOf(logits: Float32Array, y: Int32Array, classes: number): Float64Array {
  const out = new Float64Array(y.length);
  for (let i = 0; i < y.length; i++) {
    let other = -Infinity;
    for (let c = 0; c < classes; c++) if (c !== y[i]) other = Math.max(other, logits[i * classes + c]!);
    out[i] = logits[i * classes + y[i]!]! - other;
  }
  return out;
}

interface RunOptions {
  eps: number;
  norm: Norm;
  steps: number;
  pInit: number;
  rescale: boolean;
  onIteration?: IterationHook;
}

/** Where one run stands: the next iteration, the best point and margin of each point, its queries so far. */
interface RunState {
  it: number;
  xBest: Float32Array;
  margin: Float64Array;
  used: Int32Array;
}

/** Called every SQUARE_UNIT_ITERATIONS iterations inside a run with its state (read it before returning). */
type RunUnitHook = (run: RunState) => Promise<void>;

/** Iterations of a run per resumable unit (src/attacks/progress.ts): a few seconds of work on a CPU. */
export const SQUARE_UNIT_ITERATIONS = 250;

/**
 * One Square run on n points (flat NHWC x, labels y) with a budget of `steps` proposals per point after the start;
 * from `resume` (a state a unit hook saw) instead of a fresh start when given.
 */
function squareSingleRun(
  model: ModelFn,
  x: Float32Array,
  shape: Shape4,
  y: Int32Array,
  o: RunOptions,
  rng: UniformSource,
  resume?: RunState,
  onUnit?: RunUnitHook,
): Promise<RunState> {
  const run = o.norm === 'l2' ? squareL2Run : o.norm === 'l1' ? squareL1Run : squareLinfRun;
  return run(model, x, shape, y, o, rng, resume, onUnit);
}

/** The L-inf run: vertical-stripe start, proposals that flip one window of each channel to the other face. */
function squareLinfRun(
  model: ModelFn,
  x: Float32Array,
  shape: Shape4,
  y: Int32Array,
  o: RunOptions,
  rng: UniformSource,
  resume?: RunState,
  onUnit?: RunUnitHook,
): Promise<RunState> {
  const [n, H, W, C] = shape;
  const D = H * W * C;
  const { eps } = o;
  const lower = new Float32Array(x.length);
  const upper = new Float32Array(x.length);
  for (let j = 0; j < x.length; j++) {
    lower[j] = ballEdge(x[j]!, -eps);
    upper[j] = ballEdge(x[j]!, eps);
  }

  // Vertical stripes: one sign per (column, channel), shared by every row; drawn channel by channel, as the
  // reference draws its [n, C, 1, W] tensor.
  const xBest = resume?.xBest ?? new Float32Array(x.length);
  const signs = new Float64Array(W * C);
  for (let i = 0; i < n && !resume; i++) {
    for (let c = 0; c < C; c++) for (let w = 0; w < W; w++) signs[w * C + c] = signOf(rng.next());
    for (let h = 0; h < H; h++) {
      for (let k = 0; k < W * C; k++) {
        const j = i * D + h * W * C + k;
        xBest[j] = clamp(x[j]! + eps * signs[k]!, lower[j]!, upper[j]!);
      }
    }
  }
  const sideAt = (it: number) => squareSide(squareP(it, o.steps, o.pInit, o.rescale), H, W);
  // Row a of xNew already holds point i's xBest (randomSearch keeps it so): only the window is written, and
  // only the rows it spans are reported as changed.
  const propose: Propose = (i, a, s, xNew) => {
    const vh = intOf(rng.next(), H - s);
    const vw = intOf(rng.next(), W - s);
    for (let c = 0; c < C; c++) signs[c] = 2 * eps * signOf(rng.next());
    for (let h = vh; h < vh + s; h++) {
      for (let w = vw; w < vw + s; w++) {
        for (let c = 0; c < C; c++) {
          const off = h * W * C + w * C + c;
          const j = i * D + off;
          xNew[a * D + off] = clamp(xBest[j]! + signs[c]!, lower[j]!, upper[j]!);
        }
      }
    }
    return [vh * W * C, (vh + s) * W * C];
  };
  return randomSearch(model, xBest, shape, y, o, sideAt, propose, resume, onUnit);
}

/** The L2 run: centre-surround start and proposals (square-l2.ts), the same random search around them. */
function squareL2Run(
  model: ModelFn,
  x: Float32Array,
  shape: Shape4,
  y: Int32Array,
  o: RunOptions,
  rng: UniformSource,
  resume?: RunState,
  onUnit?: RunUnitHook,
): Promise<RunState> {
  const [n, H, W, C] = shape;
  const D = H * W * C;
  const delta = new Float64Array(D);
  const xBest = resume?.xBest ?? new Float32Array(x.length);
  for (let i = 0; i < n && !resume; i++) {
    l2InitDelta(delta, H, W, C, rng);
    placeOnSphere(x.subarray(i * D, (i + 1) * D), delta, o.eps, xBest.subarray(i * D, (i + 1) * D));
  }
  const sideAt = (it: number) => squareSideL2(squareP(it, o.steps, o.pInit, o.rescale), H, W);
  const propose: Propose = (i, a, s, xNew) => {
    const xi = x.subarray(i * D, (i + 1) * D);
    for (let j = 0; j < D; j++) delta[j] = xBest[i * D + j]! - xi[j]!;
    l2ProposalDelta(delta, o.eps, H, W, C, s, rng);
    placeOnSphere(xi, delta, o.eps, xNew.subarray(a * D, (a + 1) * D));
    return [0, D];
  };
  return randomSearch(model, xBest, shape, y, o, sideAt, propose, resume, onUnit);
}

/**
 * The L1 run (square-l1.ts): the L2 start grid and proposals with L1 patterns and masses, every point projected
 * onto the L1 ball ∩ box at eps·(1 − 10⁻⁶).
 */
function squareL1Run(
  model: ModelFn,
  x: Float32Array,
  shape: Shape4,
  y: Int32Array,
  o: RunOptions,
  rng: UniformSource,
  resume?: RunState,
  onUnit?: RunUnitHook,
): Promise<RunState> {
  const [n, H, W, C] = shape;
  const D = H * W * C;
  const delta = new Float64Array(D);
  const work = new Float64Array(2 * D);
  const radius = o.eps * SQUARE_L1_SHRINK;
  const xBest = resume?.xBest ?? new Float32Array(x.length);
  for (let i = 0; i < n && !resume; i++) {
    l2InitDelta(delta, H, W, C, rng, 'l1');
    l1ProjectHost(x.subarray(i * D, (i + 1) * D), delta, radius, xBest.subarray(i * D, (i + 1) * D), work);
  }
  const sideAt = (it: number) => squareSideL2(squareP(it, o.steps, o.pInit, o.rescale), H, W);
  const propose: Propose = (i, a, s, xNew) => {
    const xi = x.subarray(i * D, (i + 1) * D);
    for (let j = 0; j < D; j++) delta[j] = xBest[i * D + j]! - xi[j]!;
    l1ProposalDelta(delta, o.eps, H, W, C, s, rng);
    l1ProjectHost(xi, delta, radius, xNew.subarray(a * D, (a + 1) * D), work);
    return [0, D];
  };
  return randomSearch(model, xBest, shape, y, o, sideAt, propose, resume, onUnit);
}

/**
 * Writes point i's candidate (window side s) into row a of xNew, which holds xBest of point i on entry, and
 * returns the range [from, to) of offsets in the row outside which the candidate equals xBest.
 */
type Propose = (i: number, a: number, s: number, xNew: Float32Array) => [number, number];

/**
 * The random search shared by both norms: evaluate the start, then for iterations 0 … steps − 1 let `propose`
 * write one candidate per point not yet fooled (point i into row a of xNew, window side s), query them in one
 * batch, and keep a candidate if it lowers the margin or misclassifies. xBest is updated in place.
 * `onIteration` (tests) sees the iteration, the side and which active points accepted their proposal.
 * Started from `resume` it skips the start's evaluation and continues at resume.it; `onUnit` sees the state
 * after every SQUARE_UNIT_ITERATIONS iterations (not after the last: the caller saves the run's end).
 *
 * Per iteration the host work is kept to the proposals: xNew (allocated once) keeps row a equal to xBest of the
 * a-th active point between iterations, so a proposal writes its window only and accepting or undoing it copies
 * the rows the window spans; the rows are rebuilt only when the active set shrinks.
 */
async function randomSearch(
  model: ModelFn,
  xBest: Float32Array,
  shape: Shape4,
  y: Int32Array,
  o: { steps: number; onIteration?: IterationHook },
  sideAt: (it: number) => number,
  propose: Propose,
  resume?: RunState,
  onUnit?: RunUnitHook,
): Promise<RunState> {
  const [n, H, W, C] = shape;
  const D = H * W * C;
  let margin: Float64Array;
  let used: Int32Array;
  if (resume) {
    margin = resume.margin;
    used = resume.used;
  } else {
    const init = logitsOf(model, xBest, shape);
    margin = marginOf(init.logits, y, init.classes);
    used = new Int32Array(n).fill(1);
    // AutoAttack stops before the loop only when every start is misclassified (margin < 0).
    if (margin.every((m) => m < 0)) return { it: o.steps, xBest, margin, used };
  }
  const xNew = new Float32Array(n * D);
  const ys = new Int32Array(n);
  // rowOf[a]: the point whose xBest row a of xNew holds (−1: none yet).
  const rowOf = new Int32Array(n).fill(-1);
  for (let it = resume?.it ?? 0; it < o.steps; it++) {
    const active: number[] = [];
    for (let i = 0; i < n; i++) if (margin[i]! > 0) active.push(i);
    if (active.length === 0) break;
    const m = active.length;
    const s = sideAt(it);
    for (let a = 0; a < m; a++) {
      const i = active[a]!;
      if (rowOf[a] !== i) {
        xNew.set(xBest.subarray(i * D, (i + 1) * D), a * D);
        ys[a] = y[i]!;
        rowOf[a] = i;
      }
    }
    const changed: Array<[number, number]> = new Array(m);
    for (let a = 0; a < m; a++) changed[a] = propose(active[a]!, a, s, xNew);
    const proposed = marginOfRows(model, xNew.subarray(0, m * D), [m, H, W, C], ys.subarray(0, m));
    const accepted = new Uint8Array(m);
    for (let a = 0; a < m; a++) {
      const i = active[a]!;
      const [from, to] = changed[a]!;
      used[i]!++;
      if (proposed[a]! < margin[i]! || proposed[a]! <= 0) {
        margin[i] = proposed[a]!;
        xBest.set(xNew.subarray(a * D + from, a * D + to), i * D + from);
        accepted[a] = 1;
      } else {
        xNew.set(xBest.subarray(i * D + from, i * D + to), a * D + from);
      }
    }
    o.onIteration?.({ it, side: s, active, accepted, margin: proposed, xBest });
    if (onUnit && (it + 1) % SQUARE_UNIT_ITERATIONS === 0 && it + 1 < o.steps) await onUnit({ it: it + 1, xBest, margin, used });
  }
  return { it: o.steps, xBest, margin, used };
}

/**
 * The margins of m candidates: one upload of the rows, one forward, one download read in place (host-model's
 * logitsOf copies the logits; here they are read once).
 */
function marginOfRows(model: ModelFn, rows: Float32Array, shape: Shape4, ys: Int32Array): Float64Array {
  const t = tf.tidy(() => model(tf.tensor4d(rows, shape)));
  try {
    return marginOf(t.dataSync() as Float32Array, ys, t.shape[1]);
  } finally {
    t.dispose();
  }
}

/**
 * Square attack on a batch. Points misclassified from the start are left as they are; points the attack does
 * not fool are returned clean (as AutoAttack does). No gradients, no tensors kept, the model is only queried.
 *
 * Resumable (src/attacks/progress.ts): each restart is ⌈steps / SQUARE_UNIT_ITERATIONS⌉ units, one per
 * SQUARE_UNIT_ITERATIONS iterations of its run, the last ending with the restart (a run that ends early, every
 * point fooled, counts its remaining units at once). Unit u is restart ⌊u / U⌋ at iteration (u mod U) ·
 * SQUARE_UNIT_ITERATIONS. The state: the outer loop's xAdv, margin and queries, the seeded stream's state, and
 * inside a run its xBest, margin and queries (the points and their box are recomputed from the outer margin,
 * which a run does not change). An injected `random` source has no state to save: `progress` is refused with it.
 */
export async function square(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: SquareOptions): Promise<SquareResult> {
  const norm = checkNorm(WHO, opts.norm);
  const o: RunOptions = {
    norm,
    eps: checkRange(WHO, 'eps', opts.eps, 0, Infinity, true),
    steps: checkCount(WHO, 'steps', opts.steps ?? 5000, 1),
    pInit: checkRange(WHO, 'pInit', opts.pInit ?? 0.8, 0, 1, true),
    rescale: opts.rescaleSchedule ?? false,
    onIteration: opts.onIteration,
  };
  const restarts = checkCount(WHO, 'restarts', opts.restarts ?? 1, 1);
  const seed = checkSeed(WHO, opts.seed);
  const progress = opts.progress;
  if (progress && opts.random) throw new Error(`${WHO}: progress needs the seeded stream (an injected random source has no state to save)`);
  const { shape, xData, yData } = readInputs(WHO, x, y);
  const [B, H, W, C] = shape;
  const D = H * W * C;
  const unitsPerRestart = Math.ceil(o.steps / SQUARE_UNIT_ITERATIONS);

  const xAdv = Float32Array.from(xData);
  const queries = new Int32Array(B);
  let margin: Float64Array;
  let seeded = opts.random ? undefined : new SeededRng(deriveSeed(seed));
  let from = 0;
  let resume: RunState | undefined;
  const restored = progress?.restored;
  if (restored) {
    xAdv.set(restoredArray(restored, 'xAdv', Float32Array, B * D));
    margin = Float64Array.from(restoredArray(restored, 'margin', Float64Array, B));
    queries.set(restoredArray(restored, 'queries', Int32Array, B));
    seeded = SeededRng.fromState(restoredArray(restored, 'rng', Float64Array, 1)[0]!);
    from = Math.floor(restored.units / unitsPerRestart);
    const k = restored.units % unitsPerRestart;
    if (k > 0) {
      const n = margin.reduce((acc, m) => acc + (m > 0 ? 1 : 0), 0);
      resume = {
        it: k * SQUARE_UNIT_ITERATIONS,
        xBest: Float32Array.from(restoredArray(restored, 'xBest', Float32Array, n * D)),
        margin: Float64Array.from(restoredArray(restored, 'runMargin', Float64Array, n)),
        used: Int32Array.from(restoredArray(restored, 'runUsed', Int32Array, n)),
      };
    }
  } else {
    const clean = logitsOf(model, xData, shape);
    margin = marginOf(clean.logits, yData, clean.classes);
  }
  const rng: UniformSource = opts.random ?? seeded!;
  // The state after `units` units; `run` is the current run's state when a unit ends inside it.
  const read = (units: number, run?: RunState): AttackState => ({
    units,
    arrays: {
      xAdv: Float32Array.from(xAdv),
      margin: Float64Array.from(margin),
      queries: Int32Array.from(queries),
      rng: Float64Array.of(seeded!.state()),
      ...(run ? { xBest: Float32Array.from(run.xBest), runMargin: Float64Array.from(run.margin), runUsed: Int32Array.from(run.used) } : {}),
    },
  });

  for (let r = from; r < restarts; r++) {
    const active: number[] = [];
    for (let i = 0; i < B; i++) if (margin[i]! > 0) active.push(i);
    if (active.length === 0) break;
    const n = active.length;
    const xs = new Float32Array(n * D);
    const ys = new Int32Array(n);
    active.forEach((i, a) => {
      xs.set(xData.subarray(i * D, (i + 1) * D), a * D);
      ys[a] = yData[i]!;
    });
    const onUnit: RunUnitHook | undefined =
      progress &&
      (async (state) => {
        const units = r * unitsPerRestart + state.it / SQUARE_UNIT_ITERATIONS;
        await progress.unitDone(units, () => Promise.resolve(read(units, state)));
      });
    const run = await squareSingleRun(model, xs, [n, H, W, C], ys, o, rng, resume, onUnit);
    resume = undefined;
    active.forEach((i, a) => {
      queries[i]! += run.used[a]!;
      if (run.margin[a]! <= 0) {
        margin[i] = run.margin[a]!;
        xAdv.set(run.xBest.subarray(a * D, (a + 1) * D), i * D);
      }
    });
    if (progress) {
      const units = (r + 1) * unitsPerRestart;
      await progress.unitDone(units, () => Promise.resolve(read(units)));
    }
  }

  const pred = labelsOf(model, xAdv, shape);
  const success = new Uint8Array(B);
  for (let i = 0; i < B; i++) success[i] = pred[i] !== yData[i] ? 1 : 0;
  return { xAdv: tf.tensor4d(xAdv, shape), success, queries };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * x + offset clamped to [0, 1] as a float32 that is never farther than |offset| from x: rounding x ± eps to
 * float32 can overshoot by an ulp, which would put the point (barely) outside the eps-ball.
 */
function ballEdge(x: number, offset: number): number {
  f32[0] = Math.min(1, Math.max(0, x + offset));
  // For non-negative floats, ±1 on the bit pattern is the next float32 down / up.
  if (Math.abs(f32[0] - x) > Math.abs(offset) && f32[0] > 0) u32[0] = u32[0]! + (f32[0] > x ? -1 : 1);
  return f32[0];
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
