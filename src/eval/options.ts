/**
 * Evaluation options: flag strings → validated EvalOptions, with per-attack defaults. Everything the user can
 * get wrong is caught here, before any tensor or file is touched, as a one-line InputError naming the flag.
 */
import { parseBatchSize, parseNumberExpr } from '../config/number.js';
import { InputError } from '../errors.js';
import { oneOf } from '../input.js';
import { DATASETS, type DatasetName } from '../data/types.js';
import { AUTOATTACK_STAGE_NAMES, AUTOATTACK_VERSION_NAMES, type Norm } from '../attacks/types.js';
import { EVAL_ATTACKS, type EvalAttack, type EvalOptions, type Shard } from './types.js';

/** Options as strings, straight from the command line (undefined = not given). */
export interface RawEvalOptions {
  checkpoint?: string;
  attack?: string;
  eps?: string;
  norm?: string;
  steps?: string;
  stepSize?: string;
  restarts?: string;
  nExamples?: string;
  batchSize?: string;
  dataset?: string;
  dataDir?: string;
  seed?: string;
  shard?: string;
  protocol?: string;
  aaVersion?: string;
  attacks?: string;
}

/** Resolved options before the checkpoint is read: the dataset and example count may still come from it. */
export type PartialEvalOptions = Omit<EvalOptions, 'dataset' | 'nExamples' | 'dataDir'> & {
  dataset: DatasetName | null;
  nExamples: number | null;
  /** null: the data directory recorded in the checkpoint's config, else 'data'. */
  dataDir: string | null;
};

export const DEFAULT_EPS = '8/255';
/** The L1 radius AutoAttack's L1 results use (Croce & Hein 2021, RobustBench's L1 track): 12. */
export const DEFAULT_EPS_L1 = '12';
/** Attacks with an L1 version (AutoAttack's stages; PGD, C&W-PGD and FGSM have no L1 step here). */
const L1_ATTACKS: readonly EvalAttack[] = ['apgd-ce', 'apgd-t', 'fab-t', 'square', 'autoattack'];
export const DEFAULT_N_EXAMPLES = 10_000;
export const DEFAULT_BATCH_SIZE = 200;

/**
 * Iterations per attack when --steps is not given: PGD-20 (the step count of TRADES' evaluation, with our own
 * stronger step size, see below), APGD and FAB with the 100 iterations of AutoAttack's standard version, Square
 * with its 5000 queries.
 */
export const DEFAULT_STEPS: Record<Exclude<EvalAttack, 'autoattack'>, number> = {
  fgsm: 1,
  pgd: 20,
  cw: 20,
  'apgd-ce': 100,
  'apgd-t': 100,
  'fab-t': 100,
  square: 5000,
};

/** Attacks that take an absolute step size; FGSM steps exactly eps, APGD/FAB/Square adapt theirs. */
const TAKES_STEP_SIZE: readonly EvalAttack[] = ['pgd', 'cw'];
/** Attacks run with restarts (FGSM is deterministic; the APGD/FAB/Square stages run AutoAttack's single restart). */
const TAKES_RESTARTS: readonly EvalAttack[] = ['pgd', 'cw'];

/** AutoAttack's stage names and spellings that run as one of them with --attacks (AutoAttack's `attacks_to_run`). */
const STAGE_ALIASES: Record<string, string> = { 'apgd-dlr': 'apgd-dlr', fab: 'fab', apgd: 'apgd-ce' };

export function parseAttack(value: string): EvalAttack {
  const v = value.trim().toLowerCase();
  if ((EVAL_ATTACKS as readonly string[]).includes(v)) return v as EvalAttack;
  // An AutoAttack stage that is not an attack of its own here: the custom stage list runs it.
  const stage = STAGE_ALIASES[v];
  if (stage !== undefined) {
    throw new InputError(
      `--attack: '${value}' is an AutoAttack stage; run it with --attacks ${stage} (a custom AutoAttack list, e.g. --attacks apgd-ce,${stage})`,
    );
  }
  return oneOf(EVAL_ATTACKS, value, '--attack');
}

/** linf, l2 or l1, in any case and in AutoAttack's spelling (Linf, L2, L1) or with the symbol (l∞). */
export function parseNorm(value: string): Norm {
  const v = value.trim().toLowerCase().replace('∞', 'inf');
  if (v === 'linf' || v === 'l2' || v === 'l1') return v;
  throw new InputError(`--norm: expected linf, l2 or l1 (also Linf, L2, L1), got '${value}'`);
}

/**
 * An L∞ radius above this, on images in [0, 1], is far beyond the ones robustness papers use (2/255 to 16/255)
 * and most likely a unit slip (0.5 meant as 0.5/255, or ε in [0, 255] divided twice): warned about, not refused.
 */
export const LINF_EPS_PLAUSIBLE_MAX = 32 / 255;

/** A warning line when --eps looks like a unit mistake, else undefined. */
export function epsWarning(o: Pick<PartialEvalOptions, 'eps' | 'epsInput' | 'norm'>): string | undefined {
  if (o.norm !== 'linf' || o.eps <= LINF_EPS_PLAUSIBLE_MAX) return undefined;
  return (
    `--eps ${o.epsInput} is ${(o.eps * 255).toFixed(1)}/255 in L∞ on images in [0, 1]; published evaluations use 8/255 (0.0314) on CIFAR. ` +
    `Write --eps 8/255 for 8 pixel levels; evaluating at ${o.eps} as asked`
  );
}

export function parseDataset(value: string, source = '--dataset'): DatasetName {
  return oneOf(DATASETS, value, source);
}

/** A whole number in [min, max]; `flag` names the option in the message. */
export function parseIntFlag(value: string, flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const s = value.trim();
  if (!/^[+-]?\d+$/.test(s)) throw new InputError(`${flag}: expected a whole number, got '${value}'`);
  const n = Number(s);
  if (n < min || n > max) {
    throw new InputError(`${flag}: expected a whole number ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`}, got ${n}`);
  }
  return n;
}

/** `i/n` with 0 <= i < n: shard i of n contiguous blocks. */
export function parseShard(value: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(value);
  if (!m) throw new InputError(`--shard: expected index/count like 0/4, got '${value}'`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1) throw new InputError(`--shard: the shard count must be >= 1, got '${value}'`);
  if (index >= count) throw new InputError(`--shard: the index must be in [0, ${count - 1}] (indices start at 0), got '${value}'`);
  return { index, count };
}

/**
 * A perturbation size: positive; at most 1 in L∞ because inputs live in [0, 1] (a bigger radius is a unit
 * mistake such as 8 instead of 8/255). L2 radii can exceed 1 (the diameter of [0,1]^d is sqrt(d)).
 */
export function parseRadius(value: string, flag: string, norm: Norm): number {
  const n = parseNumberExpr(value, flag);
  if (!(n > 0)) throw new InputError(`${flag}: expected a positive number, got '${value}'`);
  if (norm === 'linf' && n > 1) {
    throw new InputError(`${flag}: expected at most 1 for --norm linf (inputs are in [0, 1]; did you mean ${value}/255?), got '${value}'`);
  }
  return n;
}

export const EVAL_PROTOCOLS = ['default', 'trades'] as const;

/**
 * TRADES' PGD-20 evaluation (Zhang et al. 2019, pgd_attack_cifar10.py, `_pgd_whitebox`): ε 0.031, 20 steps of
 * 0.003 from x + U[−ε, ε] (not clamped), cross-entropy, the last iterate; a point counts as robust when the last
 * iterate is classified correctly, also a clean-misclassified point that the attack happens to fix.
 */
export const TRADES_PROTOCOL = { eps: 0.031, epsInput: '0.031', stepSize: 0.003, stepSizeInput: '0.003', steps: 20, restarts: 1 } as const;

/** Validates the flags and fills the per-attack defaults. */
export function resolveEvalOptions(raw: RawEvalOptions): PartialEvalOptions {
  if (raw.checkpoint === undefined || raw.checkpoint.trim() === '') throw new InputError('--checkpoint: a checkpoint directory is required');
  const protocol = raw.protocol?.trim() ?? 'default';
  if (!(EVAL_PROTOCOLS as readonly string[]).includes(protocol))
    throw new InputError(`--protocol: expected one of ${EVAL_PROTOCOLS.join('|')}, got '${raw.protocol}'`);
  if (protocol === 'trades') return tradesProtocol(raw);
  // A custom stage list is an AutoAttack run: --attack may be left out.
  if (raw.attack === undefined && raw.attacks === undefined) throw new InputError(`--attack: required, one of ${EVAL_ATTACKS.join('|')}`);
  const attack = parseAttack(raw.attack ?? 'autoattack');
  const aa = autoAttackChoice(raw, attack);
  const norm = parseNorm(raw.norm ?? 'linf');
  if (norm === 'l1' && !L1_ATTACKS.includes(attack)) throw new InputError(`--norm: l1 works with --attack ${L1_ATTACKS.join('|')}, got --attack ${attack}`);
  const epsInput = (raw.eps ?? (norm === 'l1' ? DEFAULT_EPS_L1 : DEFAULT_EPS)).trim();
  const eps = parseRadius(epsInput, '--eps', norm);

  let steps: number | null = null;
  let stepSize: number | null = null;
  let stepSizeInput: string | null = null;
  let restarts: number | null = null;
  if (attack === 'autoattack') {
    // The standard ensemble is only comparable across papers with its fixed settings.
    for (const [flag, v] of [
      ['--steps', raw.steps],
      ['--step-size', raw.stepSize],
      ['--restarts', raw.restarts],
    ] as const) {
      if (v !== undefined) throw new InputError(`${flag}: not accepted with --attack autoattack (every version and stage has fixed settings)`);
    }
  }
  if (attack !== 'autoattack') {
    steps = raw.steps === undefined ? DEFAULT_STEPS[attack] : parseIntFlag(raw.steps, '--steps', 1);
    if (attack === 'fgsm' && steps !== 1) throw new InputError(`--steps: fgsm is a single step, got ${steps} (use --attack pgd)`);
    if (TAKES_STEP_SIZE.includes(attack)) {
      // eps/4 (2/255 at eps = 8/255): our default, stronger than TRADES' 0.003 at eps 0.031 (about eps/10);
      // --protocol trades runs TRADES' evaluation exactly.
      stepSizeInput = raw.stepSize?.trim() ?? null;
      stepSize = raw.stepSize === undefined ? eps / 4 : parseRadius(raw.stepSize, '--step-size', norm);
    } else if (raw.stepSize !== undefined) {
      throw new InputError(`--step-size: not used by --attack ${attack} (${attack === 'fgsm' ? 'FGSM steps exactly eps' : 'it adapts its own step size'})`);
    }
    if (TAKES_RESTARTS.includes(attack)) restarts = raw.restarts === undefined ? 1 : parseIntFlag(raw.restarts, '--restarts', 1);
    else if (raw.restarts !== undefined) throw new InputError(`--restarts: only pgd and cw take restarts (--attack ${attack} runs one)`);
  }

  return {
    checkpoint: raw.checkpoint,
    attack,
    eps,
    epsInput,
    norm,
    steps,
    stepSize,
    stepSizeInput,
    restarts,
    nExamples: raw.nExamples === undefined ? null : parseIntFlag(raw.nExamples, '--n-examples', 1),
    batchSize: raw.batchSize === undefined ? DEFAULT_BATCH_SIZE : parseBatchSize(raw.batchSize, '--batch-size'),
    dataset: raw.dataset === undefined ? null : parseDataset(raw.dataset),
    dataDir: raw.dataDir ?? null,
    seed: raw.seed === undefined ? 0 : parseIntFlag(raw.seed, '--seed', 0, 0xffffffff),
    shard: raw.shard === undefined ? null : parseShard(raw.shard),
    ...aa,
  };
}

/**
 * --aa-version and --attacks: only with --attack autoattack, not together. standard gives no field (older state
 * files keep matching); a list is checked name by name (stage names of the report, no repeats).
 */
function autoAttackChoice(raw: RawEvalOptions, attack: EvalAttack): Pick<EvalOptions, 'aaVersion' | 'attacks'> {
  if (attack !== 'autoattack') {
    if (raw.aaVersion !== undefined) throw new InputError(`--aa-version: only with --attack autoattack, got --attack ${attack}`);
    if (raw.attacks !== undefined) throw new InputError(`--attacks: a list of AutoAttack stages runs as --attack autoattack, got --attack ${attack}`);
    return {};
  }
  if (raw.attacks !== undefined) {
    if (raw.aaVersion !== undefined) throw new InputError(`--attacks: a custom list replaces --aa-version ${raw.aaVersion}; give one of the two`);
    const names = raw.attacks.split(',').map((v) => v.trim());
    const seen = new Set<string>();
    for (const n of names) {
      if (!(AUTOATTACK_STAGE_NAMES as readonly string[]).includes(n))
        throw new InputError(`--attacks: expected a comma-separated list of ${AUTOATTACK_STAGE_NAMES.join('|')}, got '${n}'`);
      if (seen.has(n)) throw new InputError(`--attacks: '${n}' is listed twice`);
      seen.add(n);
    }
    return { aaVersion: 'custom', attacks: names };
  }
  const version = oneOf(AUTOATTACK_VERSION_NAMES, (raw.aaVersion ?? 'standard').trim(), '--aa-version');
  return version === 'standard' ? {} : { aaVersion: version };
}

/** `--protocol trades`: TRADES' PGD-20 evaluation, whose settings no other flag may change. */
function tradesProtocol(raw: RawEvalOptions): PartialEvalOptions {
  if (raw.attack !== undefined && raw.attack !== 'pgd')
    throw new InputError(`--attack: --protocol trades is TRADES' PGD-20 evaluation, got '${raw.attack}' (use --attack pgd or leave it out)`);
  const fixed = [
    ['--eps', raw.eps],
    ['--norm', raw.norm],
    ['--steps', raw.steps],
    ['--step-size', raw.stepSize],
    ['--restarts', raw.restarts],
  ] as const;
  for (const [flag, v] of fixed) {
    if (v !== undefined) throw new InputError(`${flag}: not accepted with --protocol trades (eps 0.031, linf, 20 steps of 0.003, 1 restart are fixed)`);
  }
  const t = TRADES_PROTOCOL;
  const rest = resolveEvalOptions({
    ...raw,
    protocol: undefined,
    attack: 'pgd',
    eps: t.epsInput,
    stepSize: t.stepSizeInput,
    steps: String(t.steps),
    restarts: String(t.restarts),
  });
  return { ...rest, protocol: 'trades' };
}

/** Number of batches of `batchSize` in `n` examples (the last one may be short). */
export function batchCount(n: number, batchSize: number): number {
  return Math.ceil(n / batchSize);
}

/**
 * The examples of a shard. Shards are contiguous runs of whole batches, so every batch (its contents and its
 * seed) is the same as in the unsharded run, which makes merged shards equal the unsharded report exactly.
 */
export function shardSlice(nExamples: number, batchSize: number, shard: Shard | null): { start: number; end: number; firstBatch: number; endBatch: number } {
  const nb = batchCount(nExamples, batchSize);
  if (shard === null) return { start: 0, end: nExamples, firstBatch: 0, endBatch: nb };
  if (shard.count > nb) {
    throw new InputError(
      `--shard: ${shard.count} shards but only ${nb} batch(es) of --batch-size ${batchSize} in --n-examples ${nExamples}; use fewer shards or a smaller batch size`,
    );
  }
  const firstBatch = Math.floor((shard.index * nb) / shard.count);
  const endBatch = Math.floor(((shard.index + 1) * nb) / shard.count);
  return { start: firstBatch * batchSize, end: Math.min(nExamples, endBatch * batchSize), firstBatch, endBatch };
}
