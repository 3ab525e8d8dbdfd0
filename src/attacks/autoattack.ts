/**
 * AutoAttack (Croce & Hein 2020) and the one sequencer behind every multi-stage evaluation: stages run in order,
 * each only on the points still robust. The sequencer re-evaluates the model on every returned adversarial (an
 * attack's own success flags are never trusted), checks validity after every stage and reports each stage to a
 * callback, which is how `src/eval/` keeps its resumable state and shards.
 *
 * Versions and custom attack lists are data: a list of `StageSpec` ({ name, attack, options }) that `stageFromSpec`
 * turns into runnable stages. A new version is a new entry of AUTOATTACK_VERSIONS, not new code.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { deriveSeed } from '../rng.js';
import { apgdCe, apgdDlr, apgdT, APGD_TARGET_CLASSES } from './apgd.js';
import { fab, fabT } from './fab.js';
import { fgsm } from './fgsm.js';
import { pgd } from './pgd.js';
import { square } from './square.js';
import type { AttackProgress, AttackState } from './progress.js';
import { gatherRows, indicesWhere, predictCorrect, scatterRows } from './subset.js';
import {
  AUTOATTACK_STAGE_NAMES,
  AUTOATTACK_VERSION_NAMES,
  type AttackResult,
  type AutoAttackStageName,
  type AutoAttackVersion,
  type ModelFn,
  type Norm,
} from './types.js';
import { checkCount, checkInputs, checkNonNegative, checkNorm, checkSeed } from './validate.js';
import { combineValidity, validityLine, type ValidityLine } from './validity.js';

/** What every stage receives from the sequencer: the threat model and a seed of its own. */
export interface StageOptions {
  eps: number;
  norm: Norm;
  seed: number;
  /** Resumable progress within the attack call (per unit: restart, target class); see src/attacks/progress.ts. */
  progress?: AttackProgress;
}

export type StageFn = (model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: StageOptions) => Promise<AttackResult>;

/** A runnable stage. Usually made from a StageSpec by stageFromSpec; tests may hand-write one. */
export interface AutoAttackStage {
  name: string;
  run: StageFn;
  /** True for score-based attacks (Square): used by the sanity check "black-box beats white-box". */
  blackBox?: boolean;
}

/** The attacks a stage can name, with the options the sequencer supplies itself (eps, norm, seed) left out. */
const ATTACK_FNS = { fgsm, pgd, 'apgd-ce': apgdCe, 'apgd-dlr': apgdDlr, 'apgd-t': apgdT, fab, 'fab-t': fabT, square } as const;
export type AttackName = keyof typeof ATTACK_FNS;
export const ATTACK_NAMES = Object.keys(ATTACK_FNS) as AttackName[];
/** Score-based attacks (no gradients). */
const BLACK_BOX: readonly AttackName[] = ['square'];

type OptionsOf<A extends AttackName> = Omit<Parameters<(typeof ATTACK_FNS)[A]>[3], keyof StageOptions>;
/** One stage as data: which attack, under which name, with which options. */
export type StageSpec = { [A in AttackName]: { name: string; attack: A; options: OptionsOf<A> } }[AttackName];

/** The one factory: a StageSpec → a runnable stage. */
export function stageFromSpec(spec: StageSpec): AutoAttackStage {
  if (!spec || !(ATTACK_NAMES as readonly string[]).includes(spec.attack)) {
    throw new InputError(`autoAttack: a stage's attack expected one of ${ATTACK_NAMES.join('|')}, got '${String(spec?.attack)}'`);
  }
  const fn = ATTACK_FNS[spec.attack] as (m: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, o: object) => Promise<AttackResult>;
  return { name: spec.name, blackBox: BLACK_BOX.includes(spec.attack), run: (m, x, y, o) => fn(m, x, y, { ...spec.options, ...o }) };
}

/** The settings of the AutoAttack versions: 100 iterations, 9 target classes, 5,000 Square queries, 1 restart each. */
export const AUTOATTACK_STANDARD = { steps: 100, nTargetClasses: APGD_TARGET_CLASSES, squareQueries: 5000, pInit: 0.8, restarts: 1 } as const;

const S = AUTOATTACK_STANDARD;
/** The restarts of APGD-CE/-DLR and FAB/FAB-T in "plus" (and the reference's constructor defaults) and the EOT draws of "rand". */
const PLUS_RESTARTS = 5;
const RAND_EOT_ITER = 20;
/**
 * AutoAttack versions as stage lists, in the order they run, with the settings the reference's set_version gives
 * them (autoattack.py, L-inf/L2): standard = APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square 5,000, one
 * restart each; plus = APGD-CE and APGD-DLR with 5 restarts, FAB with 5 restarts, Square, APGD-T (1 restart), FAB-T
 * (5 restarts: the reference's one FAB object carries fab's 5 into fab-t); rand = APGD-CE and APGD-DLR with one
 * restart and the gradient averaged over 20 draws (for randomised defences).
 */
export const AUTOATTACK_VERSIONS = {
  standard: [
    { name: 'apgd-ce', attack: 'apgd-ce', options: { steps: S.steps, restarts: S.restarts } },
    { name: 'apgd-t', attack: 'apgd-t', options: { steps: S.steps, restarts: S.restarts, nTargetClasses: S.nTargetClasses } },
    { name: 'fab-t', attack: 'fab-t', options: { steps: S.steps, restarts: S.restarts, nTargetClasses: S.nTargetClasses } },
    { name: 'square', attack: 'square', options: { steps: S.squareQueries, pInit: S.pInit, restarts: S.restarts } },
  ],
  plus: [
    { name: 'apgd-ce', attack: 'apgd-ce', options: { steps: S.steps, restarts: PLUS_RESTARTS } },
    { name: 'apgd-dlr', attack: 'apgd-dlr', options: { steps: S.steps, restarts: PLUS_RESTARTS } },
    { name: 'fab', attack: 'fab', options: { steps: S.steps, restarts: PLUS_RESTARTS } },
    { name: 'square', attack: 'square', options: { steps: S.squareQueries, pInit: S.pInit, restarts: S.restarts } },
    { name: 'apgd-t', attack: 'apgd-t', options: { steps: S.steps, restarts: S.restarts, nTargetClasses: S.nTargetClasses } },
    { name: 'fab-t', attack: 'fab-t', options: { steps: S.steps, restarts: PLUS_RESTARTS, nTargetClasses: S.nTargetClasses } },
  ],
  rand: [
    { name: 'apgd-ce', attack: 'apgd-ce', options: { steps: S.steps, restarts: S.restarts, eotIter: RAND_EOT_ITER } },
    { name: 'apgd-dlr', attack: 'apgd-dlr', options: { steps: S.steps, restarts: S.restarts, eotIter: RAND_EOT_ITER } },
  ],
} as const satisfies Record<AutoAttackVersion, readonly StageSpec[]>;
export { AUTOATTACK_VERSION_NAMES, AUTOATTACK_STAGE_NAMES, type AutoAttackVersion, type AutoAttackStageName };

/** The reference's L1 settings of "standard" (set_version, norm 'L1'): APGD-CE 5 restarts, APGD-T 5 targets, both with largeReps. */
export const AUTOATTACK_L1 = { apgdRestarts: 5, nTargetClasses: 5 } as const;

/**
 * "standard" at L1 (the reference's set_version for norm 'L1', default eps 12): APGD-CE with 5 restarts and
 * APGD-T with 5 target classes, both splitting their 100 steps over 3·eps, 2·eps and eps (largeReps); FAB-T
 * (9 targets) and Square as at L-inf/L2. "plus" and "rand" have no L1 settings in the reference (it warns) and
 * run as listed above.
 */
export const AUTOATTACK_STANDARD_L1 = [
  { name: 'apgd-ce', attack: 'apgd-ce', options: { steps: S.steps, restarts: AUTOATTACK_L1.apgdRestarts, largeReps: true } },
  { name: 'apgd-t', attack: 'apgd-t', options: { steps: S.steps, restarts: S.restarts, nTargetClasses: AUTOATTACK_L1.nTargetClasses, largeReps: true } },
  { name: 'fab-t', attack: 'fab-t', options: { steps: S.steps, restarts: S.restarts, nTargetClasses: S.nTargetClasses } },
  { name: 'square', attack: 'square', options: { steps: S.squareQueries, pInit: S.pInit, restarts: S.restarts } },
] as const satisfies readonly StageSpec[];

export const STANDARD_STAGE_NAMES = ['apgd-ce', 'apgd-t', 'fab-t', 'square'] as const;
export type StandardStageName = (typeof STANDARD_STAGE_NAMES)[number];

/**
 * A custom list (the reference's version='custom'): the named stages in the given order, each with the settings
 * the reference's constructor gives it when no version overrides them, which are exactly "plus"'s.
 */
export function customSpecs(names: readonly string[], budget: StandardBudget = {}): StageSpec[] {
  if (!Array.isArray(names) || names.length === 0) throw new InputError(`autoAttack: attacks expected a non-empty list of ${AUTOATTACK_STAGE_NAMES.join('|')}`);
  const seen = new Set<string>();
  return names.map((name) => {
    const spec = (AUTOATTACK_VERSIONS.plus as readonly StageSpec[]).find((s) => s.name === name);
    if (!spec) throw new InputError(`autoAttack: attacks expected names among ${AUTOATTACK_STAGE_NAMES.join('|')}, got '${name}'`);
    if (seen.has(name)) throw new InputError(`autoAttack: attacks names '${name}' twice`);
    seen.add(name);
    return withBudget(spec, budget);
  });
}

/** A stage's budget as the report lists it (snake_case, as the reference names the settings). */
export function stageBudget(spec: StageSpec): Record<string, number> {
  const o = spec.options as { steps?: number; restarts?: number; nTargetClasses?: number; eotIter?: number; pInit?: number; largeReps?: boolean };
  const out: Record<string, number> = {};
  if (o.steps !== undefined) out[spec.attack === 'square' ? 'queries' : 'steps'] = o.steps;
  if (o.restarts !== undefined) out.restarts = o.restarts;
  if (o.nTargetClasses !== undefined) out.n_target_classes = o.nTargetClasses;
  if (o.eotIter !== undefined) out.eot_iter = o.eotIter;
  if (o.pInit !== undefined) out.p_init = o.pInit;
  if (o.largeReps) out.use_largereps = 1;
  return out;
}

/** Smaller budgets for quick runs and tests; every field defaults to the version's own. */
export interface StandardBudget {
  /** Iterations of the gradient stages (APGD-CE, APGD-T, FAB-T). */
  steps?: number;
  /** Target classes of the targeted stages. */
  nTargetClasses?: number;
  /** Queries of Square (its `steps`). */
  squareQueries?: number;
}

/** A spec with a budget applied: the iteration count of its attack, and its target classes when it has them. */
export function withBudget(spec: StageSpec, budget: StandardBudget): StageSpec {
  const options: Record<string, unknown> = { ...spec.options };
  const steps = spec.attack === 'square' ? budget.squareQueries : budget.steps;
  if (steps !== undefined && spec.attack !== 'fgsm') options.steps = steps;
  if (budget.nTargetClasses !== undefined && 'nTargetClasses' in options) options.nTargetClasses = budget.nTargetClasses;
  return { ...spec, options } as StageSpec;
}

/** The stage specs of a version for a threat model (L1 "standard" has its own settings), with a budget applied. */
export function versionSpecs(version: AutoAttackVersion = 'standard', budget: StandardBudget = {}, norm: Norm = 'linf'): StageSpec[] {
  const specs = (version === 'standard' && norm === 'l1' ? AUTOATTACK_STANDARD_L1 : AUTOATTACK_VERSIONS[version]) as readonly StageSpec[] | undefined;
  if (!specs) throw new InputError(`autoAttack: version expected one of ${AUTOATTACK_VERSION_NAMES.join('|')}, got '${String(version)}'`);
  return specs.map((s) => withBudget(s, budget));
}

/** The four stages of AutoAttack "standard", by name, runnable (the budget fields exist for quick runs and tests). */
export function standardStages(budget: StandardBudget = {}, norm: Norm = 'linf'): Record<StandardStageName, AutoAttackStage> {
  return Object.fromEntries(versionSpecs('standard', budget, norm).map((s) => [s.name, stageFromSpec(s)])) as Record<StandardStageName, AutoAttackStage>;
}

/** What one stage did to the points handed to the sequencer. */
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

/** StageResult plus where it happened, for callers that keep their own per-point records. */
export interface StageEvent extends StageResult {
  /** Index of the stage in the list. */
  stage: number;
  /** Rows of x this stage fooled. */
  fooledRows: Int32Array;
}

/**
 * Where a stage stood at its last unit: `chunk` chunks of its points finished (the rows they fooled, their worst
 * validity) and the state of its attack inside chunk `chunk` (null: that chunk starts afresh).
 */
export interface StageCheckpoint {
  stage: number;
  chunk: number;
  fooledRows: number[];
  validity: ValidityLine | null;
  attack: AttackState | null;
}

/** Progress inside stages: `save` is offered a checkpoint after every unit of every attack and every chunk. */
export interface SequenceProgress {
  /** A checkpoint of stage `fromStage` saved by an interrupted run on the same points (undefined: none). */
  restored?: StageCheckpoint;
  /** `read()` builds the checkpoint; call it only to persist it (reading an attack's state costs a copy). */
  save(read: () => Promise<StageCheckpoint>): Promise<void>;
}

export interface SequenceOptions {
  eps: number;
  norm: Norm;
  /** The seed of stage `stage` on its `chunk`-th batch of points. */
  stageSeed: (stage: number, chunk: number) => number;
  /** Points per attack call (default: all still-robust points at once). */
  batchSize?: number;
  /** First stage to run (the earlier ones already ran, e.g. before a resume). */
  fromStage?: number;
  /** Keep the adversarial inputs (autoAttack's xAdv); evaluations that only count do not. */
  keepAdversarials?: boolean;
  /** Called after every stage, attacked points or not. */
  onStage?: (event: StageEvent) => void | Promise<void>;
  /** Checked before every stage: an aborted run stops there. */
  signal?: AbortSignal;
  /** Resumable progress inside stages (per attack unit). */
  progress?: SequenceProgress;
}

export interface SequenceResult {
  /** Per point: the adversarial that fooled it, else x (null unless keepAdversarials). Caller disposes. */
  xAdv: tf.Tensor4D | null;
  stages: StageEvent[];
  /** True when the signal stopped the run before its last stage. */
  stopped: boolean;
}

function chunks(idx: Int32Array, size: number): Int32Array[] {
  const out: Int32Array[] = [];
  for (let i = 0; i < idx.length; i += size) out.push(idx.subarray(i, i + size));
  return out;
}

/**
 * The sequencer: runs `stages` (from `fromStage`) on the points with robust[i] = 1, each on what is still robust,
 * and clears robust[i] (in place) for every point a stage fooled. Invalid adversarials throw (InvalidAdversarialError).
 */
export async function runStages(
  model: ModelFn,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  robust: Uint8Array,
  stages: readonly AutoAttackStage[],
  opts: SequenceOptions,
): Promise<SequenceResult> {
  const n = x.shape[0];
  const batchSize = opts.batchSize ?? Math.max(n, 1);
  let xAdv = opts.keepAdversarials ? tf.clone(x) : null;
  const events: StageEvent[] = [];
  try {
    for (let s = opts.fromStage ?? 0; s < stages.length; s++) {
      if (opts.signal?.aborted) return { xAdv, stages: events, stopped: true };
      const stage = stages[s]!;
      const todo = indicesWhere(robust, 1);
      const t0 = performance.now();
      let validity: ValidityLine | null = null;
      const fooled: number[] = [];
      const batches = chunks(todo, batchSize);
      // A checkpoint of this stage: the chunks it finished are not run again, the current one resumes its attack.
      const restored = opts.progress?.restored?.stage === s ? opts.progress.restored : undefined;
      if (restored) {
        for (const i of restored.fooledRows) {
          robust[i] = 0;
          fooled.push(i);
        }
        validity = restored.validity;
      }
      const progress = opts.progress;
      for (let c = restored?.chunk ?? 0; c < batches.length; c++) {
        const idx = batches[c]!;
        const xs = gatherRows(x, idx);
        const ys = gatherRows(y, idx);
        const checkpoint = (chunk: number, attack: AttackState | null): StageCheckpoint => ({ stage: s, chunk, fooledRows: [...fooled], validity, attack });
        const attackProgress: AttackProgress | undefined = progress && {
          restored: restored?.chunk === c ? (restored.attack ?? undefined) : undefined,
          unitDone: (_units, read) => progress.save(async () => checkpoint(c, await read())),
        };
        try {
          const res = await stage.run(model, xs, ys, {
            eps: opts.eps,
            norm: opts.norm,
            seed: opts.stageSeed(s, c),
            ...(attackProgress ? { progress: attackProgress } : {}),
          });
          try {
            const v = await validityLine(xs, res.xAdv, { eps: opts.eps, norm: opts.norm, attack: stage.name });
            validity = validity ? combineValidity(validity, v) : v;
            // Judged by our own forward pass, not the attack's bookkeeping (as AutoAttack re-checks its outputs).
            const hit = indicesWhere(await predictCorrect(model, res.xAdv, ys), 0);
            if (hit.length > 0) {
              const rowsIdx = Int32Array.from(hit, (k) => idx[k]!);
              if (xAdv) {
                const rows = gatherRows(res.xAdv, hit);
                const next = scatterRows(xAdv, rowsIdx, rows);
                tf.dispose([rows, xAdv]);
                xAdv = next;
              }
              for (const i of rowsIdx) {
                robust[i] = 0;
                fooled.push(i);
              }
            }
          } finally {
            res.xAdv.dispose();
          }
        } finally {
          tf.dispose([xs, ys]);
        }
        if (progress && c + 1 < batches.length) await progress.save(() => Promise.resolve(checkpoint(c + 1, null)));
      }
      const event: StageEvent = {
        stage: s,
        name: stage.name,
        blackBox: stage.blackBox ?? false,
        attacked: todo.length,
        fooled: fooled.length,
        fooledRows: Int32Array.from(fooled),
        robustAccuracy: n > 0 ? count(robust) / n : 0,
        timeMs: performance.now() - t0,
        validity,
      };
      events.push(event);
      await opts.onStage?.(event);
    }
  } catch (e) {
    xAdv?.dispose();
    throw e;
  }
  return { xAdv, stages: events, stopped: false };
}

function count(flags: Uint8Array): number {
  return flags.reduce((a, v) => a + v, 0);
}

export interface AutoAttackOptions extends StandardBudget {
  eps: number;
  norm: Norm;
  seed: number;
  version?: AutoAttackVersion;
  /**
   * Stages to run, in order: names (a stage of the version, else the custom-list stage of that name, see
   * customSpecs), specs, and/or runnable stages. Default: the version's.
   */
  attacks?: Array<AutoAttackStageName | StageSpec | AutoAttackStage>;
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
  const specs = versionSpecs(opts.version ?? 'standard', opts, opts.norm);
  const list = opts.attacks ?? specs.map((s) => s.name);
  if (!Array.isArray(list) || list.length === 0) throw new InputError(`autoAttack: attacks expected a non-empty list of stages`);
  return list.map((a) => {
    if (typeof a === 'string') {
      const spec = specs.find((s) => s.name === a) ?? customSpecs([a], opts)[0]!;
      return stageFromSpec(spec);
    }
    if (a && 'attack' in a) return stageFromSpec(withBudget(a, opts));
    if (!a || typeof a.name !== 'string' || typeof a.run !== 'function') throw new InputError('autoAttack: a custom stage needs { name, run }');
    return a;
  });
}

/**
 * Runs the stages on the points classified correctly, each on what is still robust, stopping as soon as none
 * remain. Invalid adversarials throw (InvalidAdversarialError); a stage's claimed successes count only if the
 * model misclassifies its output.
 */
export async function autoAttack(model: ModelFn, x: tf.Tensor4D, y: tf.Tensor1D, opts: AutoAttackOptions): Promise<AutoAttackResult> {
  const who = 'autoAttack';
  checkInputs(who, x, y);
  checkNorm(who, opts.norm);
  checkNonNegative(who, 'eps', opts.eps);
  checkSeed(who, opts.seed);
  if (opts.seed < 0) throw new InputError(`${who}: seed expected an integer >= 0, got ${opts.seed}`);
  if (opts.batchSize !== undefined) checkCount(who, 'batchSize', opts.batchSize, 1);
  const stages = resolveStages(opts);
  const n = x.shape[0];
  const batchSize = opts.batchSize ?? Math.max(n, 1);
  const start = performance.now();

  const cleanCorrect = new Uint8Array(n);
  for (let s = 0; s < n; s += batchSize) {
    const idx = Int32Array.from({ length: Math.min(batchSize, n - s) }, (_, k) => s + k);
    const [xs, ys] = [gatherRows(x, idx), gatherRows(y, idx)];
    cleanCorrect.set(await predictCorrect(model, xs, ys), s);
    tf.dispose([xs, ys]);
  }
  const robust = Uint8Array.from(cleanCorrect);
  const fooledBy: Array<string | null> = Array.from(cleanCorrect, (c) => (c ? null : 'clean'));
  const results: StageResult[] = [];
  // Nothing left to attack: the remaining stages are not run.
  const controller = new AbortController();
  if (count(robust) === 0) controller.abort();
  const { xAdv } = await runStages(model, x, y, robust, stages, {
    eps: opts.eps,
    norm: opts.norm,
    batchSize,
    keepAdversarials: true,
    stageSeed: (s, c) => deriveSeed(opts.seed, s, c),
    signal: controller.signal,
    onStage: ({ stage: _s, fooledRows, ...result }) => {
      for (const i of fooledRows) fooledBy[i] = result.name;
      results.push(result);
      opts.onStage?.(result);
      if (count(robust) === 0) controller.abort();
    },
  });
  return {
    xAdv: xAdv!,
    cleanCorrect,
    robust,
    fooledBy,
    cleanAccuracy: n > 0 ? count(cleanCorrect) / n : 0,
    robustAccuracy: n > 0 ? count(robust) / n : 0,
    stages: results,
    timeMs: performance.now() - start,
  };
}
