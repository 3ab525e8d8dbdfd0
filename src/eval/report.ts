/**
 * The JSON report of an evaluation, built from its state, and the merge of shard reports. Accuracies are
 * ratios of integer counts, so a merge (sum of counts over sum of examples) reproduces the unsharded numbers
 * bit for bit.
 */
import { recompare } from '../interop/robustbench-info.js';
import { checkBlackBoxStronger } from '../attacks/checks.js';
import { shortId } from '../checkpoint/identity.js';
import { combineValidity, EMPTY_VALIDITY, formatValidity, type ValidityLine } from '../attacks/validity.js';
import { InputError } from '../errors.js';
import type { EvalState } from './state.js';
import type { EvalReport, PerClassRow, StageReport } from './types.js';
import { mergePerClass, perClassRows, perClassSummary } from './per-class.js';
import { validityFromJson, validityToJson } from './validity.js';

export interface ReportContext {
  arch: string;
  /** The model's identity (sha256 over its weights, src/checkpoint/identity.ts). */
  weightsSha256: string;
  numClasses: number;
  backend: { name: string; package: string; devices: string[] };
  /** The loss the attack maximises, when it has one ('ce' for pgd, 'cw' for cw...). */
  loss: string | null;
  details: Record<string, number | string>;
  /** Labels of the report's examples (the slice), for the per-class table. */
  labels?: ArrayLike<number>;
}

function ratio(k: number, n: number): number {
  return n === 0 ? 0 : k / n;
}

/** The report of a finished state (every batch of its slice has all stages done). */
export function buildReport(state: EvalState, ctx: ReportContext): EvalReport {
  const o = state.options;
  const n = state.slice.end - state.slice.start;
  let cleanCorrect = 0;
  const survivors = new Array<number>(state.stages.length).fill(0);
  for (let i = 0; i < n; i++) {
    if (state.clean[i] === -1) throw new Error(`eval state: example ${state.slice.start + i} was never evaluated`);
    if (state.clean[i] === 1) cleanCorrect++;
    // TRADES' counting rule (--protocol trades): every point whose last iterate is correct, clean errors included.
    else if (o.protocol !== 'trades') continue;
    const broken = state.brokenAt[i]!;
    for (let s = 0; s < state.stages.length; s++) if (broken === -1 || broken > s) survivors[s]!++;
  }
  let validity: ValidityLine = { ...EMPTY_VALIDITY };
  let cleanTime = 0;
  const stageTimes = new Array<number>(state.stages.length).fill(0);
  for (const b of Object.values(state.batches)) {
    validity = combineValidity(validity, b.validity);
    cleanTime += b.cleanTime;
    b.stageTimes.forEach((t, s) => (stageTimes[s]! += t));
  }
  const stages: StageReport[] = state.stages.map((name, s) => ({
    name,
    robust_acc: ratio(survivors[s]!, n),
    robust_correct: survivors[s]!,
    time_s: round3(stageTimes[s]!),
  }));
  const robustCorrect = stages.length > 0 ? stages[stages.length - 1]!.robust_correct : cleanCorrect;
  // Robust per example by the same rule as the counts above (the last stage's survivors).
  const robustAt = (i: number): number =>
    stages.length === 0 ? (state.clean[i] === 1 ? 1 : 0) : (state.clean[i] === 1 || o.protocol === 'trades') && state.brokenAt[i] === -1 ? 1 : 0;
  const perClass = ctx.labels
    ? perClassRows(
        ctx.labels,
        state.clean,
        Array.from({ length: n }, (_, i) => robustAt(i)),
        ctx.numClasses,
        o.dataset,
      )
    : undefined;
  return {
    tool: 'ikl-eval',
    checkpoint: o.checkpoint,
    weights_sha256: ctx.weightsSha256,
    arch: ctx.arch,
    num_classes: ctx.numClasses,
    dataset: o.dataset,
    attack: o.attack,
    attack_params: {
      eps: o.eps,
      eps_input: o.epsInput,
      norm: o.norm,
      steps: o.steps,
      step_size: o.stepSize,
      step_size_input: o.stepSizeInput,
      restarts: o.restarts,
      loss: ctx.loss,
      stages: [...state.stages],
      details: { ...ctx.details },
    },
    eps: o.eps,
    eps_input: o.epsInput,
    norm: o.norm,
    seed: o.seed,
    batch_size: o.batchSize,
    n_examples: n,
    n_examples_total: o.nExamples,
    shard: o.shard,
    slice: { ...state.slice },
    clean_acc: ratio(cleanCorrect, n),
    clean_correct: cleanCorrect,
    robust_acc: ratio(robustCorrect, n),
    robust_correct: robustCorrect,
    stages,
    ...(perClass ? { per_class: perClass, per_class_summary: perClassSummary(perClass) } : {}),
    time_s: { clean: round3(cleanTime), attack: round3(stageTimes.reduce((a, b) => a + b, 0)) },
    validity: { ...validityToJson(validity), line: formatValidity(validity, o.eps, o.norm) },
    sanity_warnings: [...(state.sanityWarnings ?? []), ...resultWarnings(stages)],
    backend: ctx.backend,
  };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Report fields that must agree between shards of one evaluation (the model: assertSameModel). */
const SAME_IN_EVERY_SHARD = [
  'checkpoint_sha256',
  'arch',
  'num_classes',
  'dataset',
  'attack',
  'attack_params',
  'eps',
  'eps_input',
  'norm',
  'seed',
  'batch_size',
  'n_examples_total',
] as const;

/** Minimal shape check of a parsed report file, so merge fails with a message rather than NaN. */
export function assertReport(r: unknown, source: string): asserts r is EvalReport {
  const o = r as Record<string, unknown>;
  if (o === null || typeof o !== 'object' || o.tool !== 'ikl-eval') throw new InputError(`${source}: not an ikl-eval report (no "tool": "ikl-eval")`);
  for (const k of ['n_examples', 'clean_correct', 'robust_correct', 'n_examples_total'] as const) {
    if (typeof o[k] !== 'number') throw new InputError(`${source}: field ${k} must be a number`);
  }
  const slice = o.slice as { start?: unknown; end?: unknown } | undefined;
  if (!slice || typeof slice.start !== 'number' || typeof slice.end !== 'number') throw new InputError(`${source}: field slice must be {start, end}`);
  if (!Array.isArray(o.stages) || !o.validity || !Array.isArray(o.sanity_warnings))
    throw new InputError(`${source}: fields stages, validity, sanity_warnings are required`);
}

/**
 * Combines shard reports into the report of the whole run. The shards must come from the same evaluation
 * (same options), cover disjoint slices, and together cover [0, n_examples_total).
 * `sources` name the files in error messages.
 */
/** When and by which version the shards were made: the newest time, every version (older reports have neither). */
function provenance(reports: EvalReport[]): Pick<EvalReport, 'created_at' | 'ikl_at_version'> {
  const times = reports.map((r) => r.created_at).filter((t): t is string => typeof t === 'string');
  const versions = [...new Set(reports.map((r) => r.ikl_at_version).filter((v): v is string => typeof v === 'string'))];
  return {
    ...(times.length > 0 ? { created_at: times.reduce((a, b) => (a > b ? a : b)) } : {}),
    ...(versions.length > 0 ? { ikl_at_version: versions.join(',') } : {}),
  };
}

export function mergeReports(reports: EvalReport[], sources: string[] = reports.map((_, i) => `report ${i}`)): EvalReport {
  if (reports.length === 0) throw new InputError('merge: expected at least one report file');
  reports.forEach((r, i) => assertReport(r, sources[i]!));
  const first = reports[0]!;
  const legacy = assertSameModel(reports, sources);
  for (let i = 1; i < reports.length; i++) {
    // AutoAttack version and stage list first, by name (they differ inside attack_params too).
    for (const [what, get] of [
      ['AutoAttack version', (r: EvalReport) => r.attack_params?.details?.version],
      ['stages', (r: EvalReport) => r.attack_params?.stages?.join(',')],
    ] as const) {
      const [a, b] = [get(first), get(reports[i]!)];
      if (a !== b)
        throw new InputError(`merge: ${sources[i]} has ${what} ${String(b)} but ${sources[0]} has ${String(a)}; these are not shards of one evaluation`);
    }
    for (const k of SAME_IN_EVERY_SHARD) {
      const a = JSON.stringify(first[k]);
      const b = JSON.stringify(reports[i]![k]);
      if (a !== b) throw new InputError(`merge: ${sources[i]} has ${k}=${b} but ${sources[0]} has ${k}=${a}; these are not shards of one evaluation`);
    }
  }
  const order = reports.map((r, i) => ({ r, src: sources[i]! })).sort((a, b) => a.r.slice.start - b.r.slice.start);
  let expected = 0;
  for (const { r, src } of order) {
    if (r.slice.start < expected) throw new InputError(`merge: ${src} covers examples [${r.slice.start}, ${r.slice.end}) which overlap another report`);
    if (r.slice.start > expected) throw new InputError(`merge: no report covers examples [${expected}, ${r.slice.start}) (a shard is missing)`);
    expected = r.slice.end;
  }
  if (expected !== first.n_examples_total) {
    throw new InputError(`merge: no report covers examples [${expected}, ${first.n_examples_total}) (a shard is missing)`);
  }

  const n = reports.reduce((a, r) => a + r.n_examples, 0);
  const clean = reports.reduce((a, r) => a + r.clean_correct, 0);
  const robust = reports.reduce((a, r) => a + r.robust_correct, 0);
  const stages: StageReport[] = first.stages.map((st, s) => {
    const correct = reports.reduce((a, r) => a + r.stages[s]!.robust_correct, 0);
    return { name: st.name, robust_acc: ratio(correct, n), robust_correct: correct, time_s: round3(reports.reduce((a, r) => a + r.stages[s]!.time_s, 0)) };
  });
  const validity = reports.map((r) => validityFromJson(r.validity)).reduce(combineValidity, { ...EMPTY_VALIDITY });
  // Per-class counts add up; a shard of an older version has none, and then neither has the merge.
  const tables = reports.map((r) => r.per_class);
  const perClass = tables.every((t) => Array.isArray(t)) ? mergePerClass(tables as PerClassRow[][], first.dataset) : undefined;
  // Result warnings are recomputed from the merged counts; the pre-run ones are the same in every shard.
  const perShard = new Set(reports.flatMap((r) => resultWarnings(r.stages)));
  const warnings = [...new Set(reports.flatMap((r) => r.sanity_warnings).filter((w) => !perShard.has(w))), ...resultWarnings(stages)];
  const backends = [...new Set(reports.map((r) => JSON.stringify(r.backend)))];
  const merged: EvalReport = {
    ...first,
    n_examples: n,
    shard: null,
    slice: { start: 0, end: n },
    clean_acc: ratio(clean, n),
    clean_correct: clean,
    robust_acc: ratio(robust, n),
    robust_correct: robust,
    stages,
    per_class: perClass,
    per_class_summary: perClass ? perClassSummary(perClass) : undefined,
    time_s: {
      clean: round3(reports.reduce((a, r) => a + r.time_s.clean, 0)),
      attack: round3(reports.reduce((a, r) => a + r.time_s.attack, 0)),
    },
    validity: { ...validityToJson(validity), line: formatValidity(validity, first.eps, first.norm) },
    sanity_warnings: legacy ? [...warnings, LEGACY_MERGE_WARNING] : warnings,
    // Shards may run on different machines; a mix is reported, never hidden.
    backend: backends.length === 1 ? first.backend : { name: 'mixed', package: 'mixed', devices: reports.flatMap((r) => r.backend.devices) },
    ...provenance(reports),
  };
  // A RobustBench model's comparison is recomputed from the merged numbers (the first shard's would be stale).
  if (first.robustbench) merged.robustbench = recompare(first.robustbench, merged);
  return merged;
}

export const LEGACY_MERGE_WARNING =
  'merged reports that record no weights_sha256 (written by an older ikl-eval): the shards were matched by checkpoint path only, ' +
  'which does not prove they evaluated the same weights';

/**
 * The shards must be of one model. Reports name it by `weights_sha256`, so the same weights reached by other
 * paths (relative/absolute, another machine's mount) merge, and different weights at one path (wa/, best/,
 * last/ move on while training continues) are refused. Reports from before the hash (none has it) fall back to
 * the old rule, the same checkpoint path, and the merge says so (returns true); a mix of the two is refused,
 * since nothing shows that the unhashed one evaluated the same weights.
 */
function assertSameModel(reports: EvalReport[], sources: string[]): boolean {
  const hashed = reports.map((r) => typeof r.weights_sha256 === 'string');
  if (hashed.every((h) => !h)) {
    const i = reports.findIndex((r) => r.checkpoint !== reports[0]!.checkpoint);
    if (i >= 0) {
      throw new InputError(
        `merge: ${sources[i]} evaluated checkpoint ${reports[i]!.checkpoint} but ${sources[0]} evaluated ${reports[0]!.checkpoint}; these are not shards of one evaluation`,
      );
    }
    return true;
  }
  const bare = hashed.indexOf(false);
  if (bare >= 0) {
    const h = hashed.indexOf(true);
    throw new InputError(
      `merge: ${sources[bare]} records no weights_sha256 (an older ikl-eval) but ${sources[h]} does (${shortId(reports[h]!.weights_sha256!)}); ` +
        `nothing shows they evaluated the same weights: re-run the shard of ${sources[bare]}`,
    );
  }
  const first = reports[0]!;
  for (let i = 1; i < reports.length; i++) {
    const r = reports[i]!;
    if (r.weights_sha256 !== first.weights_sha256) {
      throw new InputError(
        `merge: ${sources[i]} evaluated weights sha256 ${shortId(r.weights_sha256!)} (checkpoint ${r.checkpoint}) but ${sources[0]} evaluated ` +
          `${shortId(first.weights_sha256!)} (checkpoint ${first.checkpoint}); these are different models, not shards of one evaluation`,
      );
    }
  }
  return false;
}

/**
 * Warnings that follow from the results: Square (black box) breaking points that every gradient stage before it
 * missed is AutoAttack's sign of gradient masking. Computed from the stage counts, so a merged report derives
 * the same warning as the unsharded run.
 */
export function resultWarnings(stages: StageReport[]): string[] {
  const results = stages.map((s, i) => ({
    name: s.name,
    blackBox: s.name === 'square',
    fooled: i === 0 ? 0 : stages[i - 1]!.robust_correct - s.robust_correct,
  }));
  const w = checkBlackBoxStronger(results);
  return w === null ? [] : [w];
}
