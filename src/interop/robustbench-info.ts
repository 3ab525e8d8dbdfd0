/**
 * Our model on the RobustBench leaderboard: the model-info JSON of `model_info/<dataset>/<threat>/<name>.json`
 * filled from an `ikl-eval` report of standard AutoAttack on the full test set of exactly the exported weights,
 * and the constructor call of RobustBench's model zoo that loads the exported state_dict strictly.
 */
import { readFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import { parseWrnArch } from '../models/types.js';
import type { RobustBenchEntry } from './robustbench-types.js';

/** The fields of RobustBench's model-info JSON, in its order. */
export interface RobustBenchModelInfo {
  link: string;
  name: string;
  authors: string;
  additional_data: boolean;
  number_forward_passes: number;
  dataset: string;
  venue: string;
  architecture: string;
  eps: string;
  clean_acc: string;
  reported: string;
  autoattack_acc: string;
  footnote: string | null;
  unreliable: boolean;
}

/** What only the authors know (from `--paper-info <file>`); the rest comes from the report. */
const PAPER_FIELDS = {
  link: 'string',
  name: 'string',
  authors: 'string',
  venue: 'string',
  additional_data: 'boolean',
  number_forward_passes: 'number',
  footnote: 'string',
  reported: 'string',
  unreliable: 'boolean',
} as const;
export type PaperInfo = Partial<Pick<RobustBenchModelInfo, keyof typeof PAPER_FIELDS>>;

/** Reads and checks `--paper-info` (unknown keys and wrong types refused by name). */
export function readPaperInfo(file: string): PaperInfo {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new InputError(
      `--paper-info ${file}: ${(e as NodeJS.ErrnoException).code ?? 'not JSON'} (expected a JSON object of ${Object.keys(PAPER_FIELDS).join(', ')})`,
    );
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new InputError(`--paper-info ${file}: expected a JSON object`);
  for (const [k, x] of Object.entries(v)) {
    const want = (PAPER_FIELDS as Record<string, string>)[k];
    if (!want) throw new InputError(`--paper-info ${file}: unknown field '${k}', expected ${Object.keys(PAPER_FIELDS).join(', ')}`);
    if (typeof x !== want && !(k === 'footnote' && x === null)) throw new InputError(`--paper-info ${file}: field ${k} must be a ${want}`);
  }
  return v as PaperInfo;
}

/** RobustBench's constructor call (its model_zoo) that loads our export of `arch` with load_state_dict(strict=True). */
export function robustBenchConstructor(arch: string, numClasses: number): { call: string; architecture: string } {
  const wrn = parseWrnArch(arch);
  const c10 = numClasses === 100 ? 'CIFAR100' : 'CIFAR10';
  if (wrn?.family === 'trades-wrn') {
    return {
      call: `WideResNet(depth=${wrn.depth}, num_classes=${numClasses}, widen_factor=${wrn.widen})`,
      architecture: `WideResNet-${wrn.depth}-${wrn.widen}`,
    };
  }
  if (wrn?.family === 'dm-wrn') {
    // Our Swish WRN normalises with the statistics of its class count's dataset (models/archs.ts normalizationStats).
    return {
      call: `DMWideResNet(num_classes=${numClasses}, depth=${wrn.depth}, width=${wrn.widen}, activation_fn=Swish, mean=${c10}_MEAN, std=${c10}_STD)`,
      architecture: `WideResNet-${wrn.depth}-${wrn.widen}`,
    };
  }
  if (arch === 'preact-resnet-18') {
    return { call: `PreActResNet(PreActBlockV2, [2, 2, 2, 2], num_classes=${numClasses}, bn_before_fc=True)`, architecture: 'PreActResNet-18' };
  }
  if (arch === 'dm-preact-resnet-18') {
    return {
      call: `DMPreActResNet(num_classes=${numClasses}, depth=18, width=0, activation_fn=Swish, mean=${c10}_MEAN, std=${c10}_STD)`,
      architecture: 'PreActResNet-18',
    };
  }
  if (arch === 'resnet-18') return { call: `ResNet(BasicBlock, [2, 2, 2, 2], num_classes=${numClasses})`, architecture: 'ResNet-18' };
  throw new InputError(
    `--robustbench-info: RobustBench's model zoo has no architecture of ours for ${arch} (WRNs, preact-resnet-18, dm-preact-resnet-18, resnet-18)`,
  );
}

/** The report fields this needs (an ikl-eval report). */
interface AaReport {
  tool?: unknown;
  weights_sha256?: unknown;
  checkpoint?: unknown;
  arch?: unknown;
  num_classes?: unknown;
  dataset?: unknown;
  attack?: unknown;
  attack_params?: { details?: { version?: unknown } };
  eps?: unknown;
  eps_input?: unknown;
  norm?: unknown;
  protocol?: unknown;
  n_examples?: unknown;
  n_examples_total?: unknown;
  slice?: { start?: unknown; end?: unknown };
  clean_acc?: unknown;
  robust_acc?: unknown;
}

const TEST_SET_SIZE = 10_000;

/**
 * The model-info JSON from `report` (file `source`) for the exported weights (`weightsSha256`, the identity
 * ikl-eval writes into its reports). Refused by name: another tool's file, another model's report, a subset
 * (fewer than the 10,000 test images, a shard), anything but standard AutoAttack, a dataset not on the leaderboard.
 */
export function robustBenchInfo(
  report: unknown,
  source: string,
  model: { arch: string; numClasses: number; weightsSha256: string },
  paper: PaperInfo = {},
): { info: RobustBenchModelInfo; threat: 'Linf' | 'L2'; constructor: string; toFill: string[] } {
  const r = report as AaReport;
  const where = `--robustbench-info ${source}`;
  if (r === null || typeof r !== 'object' || r.tool !== 'ikl-eval') throw new InputError(`${where}: not an ikl-eval report (no "tool": "ikl-eval")`);
  if (typeof r.weights_sha256 !== 'string')
    throw new InputError(`${where}: records no weights_sha256 (an older ikl-eval): nothing shows it evaluated these weights`);
  if (r.weights_sha256 !== model.weightsSha256) {
    throw new InputError(
      `${where}: is the report of another model (weights_sha256 ${r.weights_sha256.slice(0, 12)}…, ${String(r.checkpoint)}); the exported weights are ${model.weightsSha256.slice(0, 12)}…`,
    );
  }
  const version = r.attack_params?.details?.version ?? null;
  if (r.attack !== 'autoattack' || version !== 'standard' || r.protocol !== undefined) {
    throw new InputError(
      `${where}: attack ${String(r.attack)}${version ? ` ${String(version)}` : ''}; the leaderboard's number is standard AutoAttack (--attack autoattack)`,
    );
  }
  if (r.n_examples !== TEST_SET_SIZE || r.n_examples_total !== TEST_SET_SIZE || r.slice?.start !== 0 || r.slice?.end !== TEST_SET_SIZE) {
    throw new InputError(
      `${where}: covers ${String(r.n_examples)} examples [${String(r.slice?.start)}, ${String(r.slice?.end)}) of ${String(r.n_examples_total)}, a subset; the leaderboard needs the full test set (10000; merge the shards with ikl-eval merge)`,
    );
  }
  if (r.dataset !== 'cifar10' && r.dataset !== 'cifar100')
    throw new InputError(`${where}: dataset ${String(r.dataset)}; the leaderboard has cifar10 and cifar100`);
  if (r.num_classes !== model.numClasses || r.arch !== model.arch) {
    throw new InputError(
      `${where}: evaluated a ${String(r.arch)} with ${String(r.num_classes)} classes, the export is a ${model.arch} with ${model.numClasses}`,
    );
  }
  if (r.norm !== 'linf' && r.norm !== 'l2') throw new InputError(`${where}: norm ${String(r.norm)}, expected linf or l2`);
  if (typeof r.clean_acc !== 'number' || typeof r.robust_acc !== 'number') throw new InputError(`${where}: fields clean_acc and robust_acc must be numbers`);
  const { call, architecture } = robustBenchConstructor(model.arch, model.numClasses);
  const pct = (x: number): string => (x * 100).toFixed(2);
  const aa = pct(r.robust_acc);
  const info: RobustBenchModelInfo = {
    link: paper.link ?? '',
    name: paper.name ?? '',
    authors: paper.authors ?? '',
    additional_data: paper.additional_data ?? false,
    number_forward_passes: paper.number_forward_passes ?? 1,
    dataset: r.dataset,
    venue: paper.venue ?? '',
    architecture,
    eps: typeof r.eps_input === 'string' ? r.eps_input : String(r.eps),
    clean_acc: pct(r.clean_acc),
    reported: paper.reported ?? aa,
    autoattack_acc: aa,
    footnote: paper.footnote ?? null,
    unreliable: paper.unreliable ?? false,
  };
  const toFill = (['link', 'name', 'authors', 'venue'] as const).filter((k) => info[k] === '');
  return { info, threat: r.norm === 'l2' ? 'L2' : 'Linf', constructor: call, toFill };
}

/** "8/255" or "0.5" → a number. */
export function parseRobustBenchEps(eps: string): number {
  const m = /^\s*([\d.]+)\s*(?:\/\s*([\d.]+))?\s*$/.exec(eps);
  if (!m) return Number.NaN;
  return m[2] === undefined ? Number(m[1]) : Number(m[1]) / Number(m[2]);
}

export interface RobustBenchComparison {
  name: string;
  dataset: string;
  threat: string;
  eps: string | null;
  /** RobustBench's numbers, in percent as it publishes them. */
  reported: { clean_acc: number | null; autoattack_acc: number | null };
  /** Ours in percent. */
  ours: { clean_acc: number; robust_acc: number };
  /** ours − reported, in percentage points. */
  difference: { clean_acc: number | null; robust_acc: number | null };
  /** Same protocol as the leaderboard (standard AutoAttack, its eps and norm, the full test set); else `differs` says what. */
  comparable: boolean;
  differs: string[];
}

/** The report's accuracies beside the leaderboard's, and whether the settings are the leaderboard's. */
export function compareWithRobustBench(
  entry: Pick<RobustBenchEntry, 'name' | 'dataset' | 'threat' | 'info'>,
  report: {
    attack: string;
    eps: number;
    norm: string;
    n_examples: number;
    n_examples_total: number;
    clean_acc: number;
    robust_acc: number;
    attack_params?: { details?: { version?: unknown } };
  },
): RobustBenchComparison {
  const num = (s: string | undefined): number | null => (s === undefined || !Number.isFinite(Number(s)) ? null : Number(s));
  const pct = (x: number): number => Math.round(x * 1e6) / 1e4;
  const reported = { clean_acc: num(entry.info?.clean_acc), autoattack_acc: num(entry.info?.autoattack_acc) };
  const ours = { clean_acc: pct(report.clean_acc), robust_acc: pct(report.robust_acc) };
  const diff = (a: number, b: number | null): number | null => (b === null ? null : Math.round((a - b) * 100) / 100);
  const differs: string[] = [];
  const version = report.attack_params?.details?.version ?? 'standard';
  if (report.attack !== 'autoattack' || version !== 'standard')
    differs.push(`attack ${report.attack}${report.attack === 'autoattack' ? ` ${String(version)}` : ''} (leaderboard: autoattack standard)`);
  const eps = entry.info?.eps === undefined ? Number.NaN : parseRobustBenchEps(entry.info.eps);
  if (!(Math.abs(report.eps - eps) < 1e-9)) differs.push(`eps ${report.eps} (leaderboard: ${entry.info?.eps ?? 'unknown'})`);
  if (report.norm.toLowerCase() !== entry.threat.toLowerCase()) differs.push(`norm ${report.norm} (leaderboard: ${entry.threat})`);
  if (report.n_examples !== 10_000) differs.push(`${report.n_examples} examples (leaderboard: the 10000 of the test set)`);
  return {
    name: entry.name,
    dataset: entry.dataset,
    threat: entry.threat,
    eps: entry.info?.eps ?? null,
    reported,
    ours,
    difference: { clean_acc: diff(ours.clean_acc, reported.clean_acc), robust_acc: diff(ours.robust_acc, reported.autoattack_acc) },
    comparable: differs.length === 0,
    differs,
  };
}

/** The comparison of merged shards: the leaderboard's numbers of the shards' comparison, against the merged accuracies. */
export function recompare(prev: RobustBenchComparison, report: Parameters<typeof compareWithRobustBench>[1]): RobustBenchComparison {
  const str = (x: number | null): string | undefined => (x === null ? undefined : String(x));
  const info = { clean_acc: str(prev.reported.clean_acc), autoattack_acc: str(prev.reported.autoattack_acc), ...(prev.eps === null ? {} : { eps: prev.eps }) };
  return compareWithRobustBench(
    { name: prev.name, dataset: prev.dataset as RobustBenchEntry['dataset'], threat: prev.threat as RobustBenchEntry['threat'], info },
    report,
  );
}
