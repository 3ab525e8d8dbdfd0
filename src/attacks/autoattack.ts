/**
 * AutoAttack (Croce & Hein 2020), "standard" version: APGD-CE, APGD-T, FAB-T and Square (5,000 queries) run in
 * that order, each only on the points still robust, stopping as soon as none remain. This file only sequences
 * attacks: it re-evaluates the model on every returned adversarial (an attack's own success flags are never
 * trusted), checks validity after every stage, and records accuracy and time per stage.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { apgdCe, apgdT, APGD_TARGET_CLASSES } from './apgd.js';
import { fabT } from './fab.js';
import { correctMask } from './grad.js';
import { deriveSeed } from '../rng.js';
import { square } from './square.js';
import { gatherRows, indicesWhere, scatterRows } from './subset.js';
import type { AttackResult, ModelFn, Norm } from './types.js';
import { checkCount, checkInputs, checkNonNegative, checkNorm } from './validate.js';
import { validityLine, type ValidityLine } from './validity.js';

/** What every stage receives: the threat model and a seed of its own. */
export interface StageOptions {
  eps: number;
  norm: Norm;
  seed: number;
}

export type StageFn = (model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: StageOptions) => AttackResult | Promise<AttackResult>;

export interface AutoAttackStage {
  name: string;
  run: StageFn;
  /** True for score-based attacks (Square): used by the sanity check "black-box beats white-box". */
  blackBox?: boolean;
}

export const STANDARD_STAGE_NAMES = ['apgd-ce', 'apgd-t', 'fab-t', 'square'] as const;
export type StandardStageName = (typeof STANDARD_STAGE_NAMES)[number];

export interface StandardBudget {
  /** Iterations of APGD-CE, APGD-T and FAB-T (standard: 100). */
  steps?: number;
  /** Target classes of APGD-T and FAB-T (standard: 9, capped at C − 1). */
  numTargetClasses?: number;
  /** Queries of Square (standard: 5,000). */
  squareQueries?: number;
}

/** The four stages of AutoAttack "standard" (1 restart each; the budget fields exist for quick runs and tests). */
export function standardStages(budget: StandardBudget = {}): Record<StandardStageName, AutoAttackStage> {
  const steps = budget.steps ?? 100;
  const numTargetClasses = budget.numTargetClasses ?? APGD_TARGET_CLASSES;
  const queries = budget.squareQueries ?? 5000;
  return {
    'apgd-ce': { name: 'apgd-ce', run: (m, x, y, o) => apgdCe(m, x, y, { ...o, steps, restarts: 1 }) },
    'apgd-t': { name: 'apgd-t', run: (m, x, y, o) => apgdT(m, x, y, { ...o, steps, restarts: 1, numTargetClasses }) },
    'fab-t': { name: 'fab-t', run: (m, x, y, o) => fabT(m, x, y, { ...o, steps, restarts: 1, nTargetClasses: numTargetClasses }) },
    square: { name: 'square', blackBox: true, run: (m, x, y, o) => square(m, x, y, { ...o, queries, restarts: 1 }) },
  };
}

export interface StageResult {
  name: string;
  blackBox: boolean;
  /** Points this stage attacked (those still robust before it). */
  attacked: number;
  /** Points it fooled (verified by re-evaluating the model on its output). */
  fooled: number;
  /** Robust accuracy over all points after this stage. */
  robustAccuracy: number;
  timeMs: number;
  /** Worst validity figures over this stage's batches (null when it attacked nothing). */
  validity: ValidityLine | null;
}

export interface AutoAttackOptions extends StandardBudget {
  eps: number;
  norm: Norm;
  seed: number;
  version?: 'standard';
  /** Stages to run, in order: names of standard stages and/or custom stages. Default: all four standard ones. */
  attacks?: Array<StandardStageName | AutoAttackStage>;
  /** Points per attack call (default: all still-robust points at once). */
  batchSize?: number;
  /** Called after every stage that ran. */
  onStage?: (stage: StageResult) => void;
}

export interface AutoAttackResult {
  /** Per point: the adversarial that fooled it, else x. Caller disposes. */
  xAdv: tf.Tensor4D;
  /** 1 = classified correctly at x. */
  cleanCorrect: Uint8Array;
  /** 1 = still classified correctly after every stage. */
  robust: Uint8Array;
  /** Per point: 'clean' if misclassified at x, the name of the stage that fooled it, or null if robust. */
  fooledBy: Array<string | null>;
  cleanAccuracy: number;
  robustAccuracy: number;
  /** The stages that ran, in order (stages after the point where nothing was robust are not run). */
  stages: StageResult[];
  timeMs: number;
}

function resolveStages(opts: AutoAttackOptions): AutoAttackStage[] {
  const standard = standardStages(opts);
  const list = opts.attacks ?? [...STANDARD_STAGE_NAMES];
  if (!Array.isArray(list) || list.length === 0) throw new InputError(`autoAttack: attacks expected a non-empty list of stages`);
  return list.map((a) => {
    if (typeof a === 'string') {
      if (!(STANDARD_STAGE_NAMES as readonly string[]).includes(a)) {
        throw new InputError(`autoAttack: attacks expected names among ${STANDARD_STAGE_NAMES.join('|')}, got '${a}'`);
      }
      return standard[a];
    }
    if (!a || typeof a.name !== 'string' || typeof a.run !== 'function') throw new InputError('autoAttack: a custom stage needs { name, run }');
    return a;
  });
}

function chunks(idx: Int32Array, size: number): Int32Array[] {
  const out: Int32Array[] = [];
  for (let i = 0; i < idx.length; i += size) out.push(idx.subarray(i, i + size));
  return out;
}

async function cleanCorrectness(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, batchSize: number): Promise<Uint8Array> {
  const n = x.shape[0];
  const out = new Uint8Array(n);
  for (let s = 0; s < n; s += batchSize) {
    const size = Math.min(batchSize, n - s);
    const ok = tf.tidy(() => tf.cast(correctMask(model(x.slice([s, 0, 0, 0], [size, -1, -1, -1])), y.slice([s], [size])), 'int32'));
    out.set(await ok.data(), s);
    ok.dispose();
  }
  return out;
}

function worstValidity(a: ValidityLine | null, b: ValidityLine): ValidityLine {
  if (!a) return b;
  return {
    maxPerturbation: Math.max(a.maxPerturbation, b.maxPerturbation),
    nanCount: a.nanCount + b.nanCount,
    min: Math.min(a.min, b.min),
    max: Math.max(a.max, b.max),
  };
}

/**
 * Runs the stages on the points classified correctly, each on what is still robust. Invalid adversarials throw
 * (InvalidAdversarialError); a stage's claimed successes count only if the model misclassifies its output.
 */
export async function autoAttack(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: AutoAttackOptions): Promise<AutoAttackResult> {
  const who = 'autoAttack';
  checkInputs(who, x, y);
  checkNorm(who, opts.norm);
  checkNonNegative(who, 'eps', opts.eps);
  if (!Number.isInteger(opts.seed) || opts.seed < 0) throw new InputError(`${who}: seed expected an integer >= 0, got ${String(opts.seed)}`);
  if (opts.version !== undefined && opts.version !== 'standard') throw new InputError(`${who}: version expected 'standard', got '${String(opts.version)}'`);
  if (opts.batchSize !== undefined) checkCount(who, 'batchSize', opts.batchSize, 1);
  const stages = resolveStages(opts);
  const n = x.shape[0];
  const batchSize = opts.batchSize ?? Math.max(n, 1);
  const start = performance.now();

  const cleanCorrect = await cleanCorrectness(model, x, y, batchSize);
  const robust = Uint8Array.from(cleanCorrect);
  const fooledBy: Array<string | null> = Array.from(cleanCorrect, (c) => (c ? null : 'clean'));
  let xAdv = tf.clone(x);
  const results: StageResult[] = [];
  const count = (flags: Uint8Array): number => flags.reduce((a, v) => a + v, 0);
  try {
    for (let s = 0; s < stages.length; s++) {
      const stage = stages[s]!;
      const todo = indicesWhere(robust, 1);
      if (todo.length === 0) break;
      const t0 = performance.now();
      let validity: ValidityLine | null = null;
      let fooled = 0;
      const batches = chunks(todo, batchSize);
      for (let c = 0; c < batches.length; c++) {
        const idx = batches[c]!;
        const xs = gatherRows(x, idx);
        const ys = gatherRows(y, idx);
        try {
          const res = await stage.run(model, xs, ys, { eps: opts.eps, norm: opts.norm, seed: deriveSeed(opts.seed, s, c) });
          try {
            validity = worstValidity(validity, await validityLine(xs, res.xAdv, { eps: opts.eps, norm: opts.norm, attack: stage.name }));
            const wrongT = tf.tidy(() => tf.cast(tf.logicalNot(correctMask(model(res.xAdv), ys)), 'int32'));
            const wrong = await wrongT.data();
            wrongT.dispose();
            const hit = indicesWhere(wrong, 1);
            if (hit.length > 0) {
              const rows = gatherRows(res.xAdv, hit);
              const rowsIdx = Int32Array.from(hit, (k) => idx[k]!);
              const next = scatterRows(xAdv, rowsIdx, rows);
              tf.dispose([rows, xAdv]);
              xAdv = next;
              for (const i of rowsIdx) {
                robust[i] = 0;
                fooledBy[i] = stage.name;
              }
              fooled += hit.length;
            }
          } finally {
            res.xAdv.dispose();
          }
        } finally {
          tf.dispose([xs, ys]);
        }
      }
      const result: StageResult = {
        name: stage.name,
        blackBox: stage.blackBox ?? false,
        attacked: todo.length,
        fooled,
        robustAccuracy: n > 0 ? count(robust) / n : 0,
        timeMs: performance.now() - t0,
        validity,
      };
      results.push(result);
      opts.onStage?.(result);
    }
  } catch (e) {
    xAdv.dispose();
    throw e;
  }
  return {
    xAdv,
    cleanCorrect,
    robust,
    fooledBy,
    cleanAccuracy: n > 0 ? count(cleanCorrect) / n : 0,
    robustAccuracy: n > 0 ? count(robust) / n : 0,
    stages: results,
    timeMs: performance.now() - start,
  };
}
