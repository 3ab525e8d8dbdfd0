/**
 * Building the resolved config: defaults < config file (YAML or JSON) < `--set key.path=value` flags.
 * Every error is an InputError naming where the bad value came from (the file or the flag), the key path and
 * what was expected, e.g. "configs/x.yaml: attack.steps: expected a positive integer, got -1".
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { DATASET_CLASSES } from '../data/types.js';
import { InputError } from '../errors.js';
import { isKdObjective } from '../train/names.js';
import { trainConfigJsonSchema, trainConfigSchema, type ParsedTrainConfig, type TrainConfig } from './schema.js';

export interface ResolveOptions {
  /** Config file, YAML (.yaml/.yml) or JSON (.json). */
  file?: string;
  /** `key.path=value` overrides, applied in order after the file. */
  sets?: string[];
  /** Instead of a file: a config object and the name to use in errors (e.g. a checkpoint's stored config). */
  base?: { value: unknown; source: string };
}

type Raw = Record<string, unknown>;

/** Keys whose children are alternatives: setting one child replaces the others (stepSize.relative vs .absolute). */
const EXCLUSIVE_PARENTS = new Set(['attack.stepSize']);

/** Resolves a training config. Throws InputError naming the file or flag, the key and what was expected. */
export function resolveConfig(opts: ResolveOptions = {}): TrainConfig {
  let raw: Raw = {};
  const origin = new Map<string, string>();
  if (opts.file !== undefined && opts.base !== undefined) throw new Error('resolveConfig: give file or base, not both');
  const source = opts.base?.source ?? opts.file;
  if (opts.file !== undefined) raw = readConfigFile(opts.file);
  if (opts.base !== undefined) {
    if (!isPlainObject(opts.base.value)) throw new InputError(`${opts.base.source}: expected a mapping of config sections, got ${show(opts.base.value)}`);
    raw = structuredClone(opts.base.value);
  }
  if (source !== undefined) {
    validate(raw, source);
    for (const p of leafPaths(raw)) origin.set(p, source);
  }
  for (const assignment of opts.sets ?? []) {
    raw = applySet(raw, assignment);
    const key = parseAssignment(assignment).path.join('.');
    origin.delete(key); // re-inserted last: Map order is the order the values were set
    origin.set(key, `--set ${assignment}`);
  }
  const parsed = validate(raw, source ?? 'config');
  // A constraint between keys is blamed on whatever set one of them last: a --set after the file, else the file.
  const sourceOf = (paths: string[]): string => {
    let blame: string | undefined;
    for (const [key, from] of origin) {
      if (paths.some((p) => p === key || p.startsWith(`${key}.`))) blame = from;
    }
    return blame ?? source ?? 'config';
  };
  return finalize(parsed, sourceOf);
}

/** Validates an already-built object (e.g. a config stored in a checkpoint). `source` names it in errors. */
export function parseConfig(value: unknown, source: string): TrainConfig {
  return resolveConfig({ base: { value, source } });
}

function readConfigFile(file: string): Raw {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(`${file}: cannot read the config file (${code === 'ENOENT' ? 'no such file' : (code ?? String(e))})`);
  }
  // A binary file (an archive, a checkpoint's weights.bin): say so with a short escaped excerpt, never echo it.
  // eslint-disable-next-line no-control-regex -- control characters are what marks a binary file
  if (/[\u0000-\u0008\u000e-\u001f\ufffd]/.test(text.slice(0, 4096))) {
    throw new InputError(`${file}: is not a text file (starts with ${show(text.slice(0, 24))}...); expected a YAML or JSON config`);
  }
  const ext = extname(file).toLowerCase();
  let value: unknown;
  if (ext === '.json') {
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new InputError(`${file}: invalid JSON (${(e as Error).message})`);
    }
  } else if (ext === '.yaml' || ext === '.yml') {
    try {
      value = parseYaml(text);
    } catch (e) {
      const where = e instanceof YAMLParseError && e.linePos ? ` at line ${e.linePos[0].line}` : '';
      throw new InputError(`${file}: invalid YAML${where} (${(e as Error).message.split('\n')[0]})`);
    }
  } else {
    throw new InputError(`${file}: expected a .yaml, .yml or .json config file, got extension '${ext || '(none)'}'`);
  }
  // An empty file is refused rather than silently meaning "all defaults": it is more often a failed copy.
  if (value === null || value === undefined) {
    throw new InputError(`${file}: is empty (no config keys); leave out --config to train with the built-in defaults, or write the keys to change`);
  }
  if (!isPlainObject(value)) throw new InputError(`${file}: expected a mapping of config sections at the top level, got ${show(value)}`);
  return value;
}

function parseAssignment(assignment: string): { path: string[]; text: string } {
  const eq = assignment.indexOf('=');
  const key = eq < 0 ? '' : assignment.slice(0, eq).trim();
  if (!/^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$/.test(key)) {
    throw new InputError(`--set ${assignment}: expected key.path=value, e.g. --set attack.steps=10`);
  }
  return { path: key.split('.'), text: assignment.slice(eq + 1) };
}

/** A flag value as YAML: numbers, booleans, lists ([100, 150]) and mappings ({absolute: 0.007}) work. */
function parseFlagValue(text: string): unknown {
  if (text.trim() === '') return text;
  try {
    return parseYaml(text);
  } catch {
    return text;
  }
}

function applySet(raw: Raw, assignment: string): Raw {
  const { path, text } = parseAssignment(assignment);
  const source = `--set ${assignment}`;
  const typed = parseFlagValue(text);
  let next = setPath(raw, path, typed, source);
  const issues = trainConfigSchema.safeParse(next, { reportInput: true }).error?.issues ?? [];
  // `--set run.name=2024` parses as a number; a string field gets the text as written.
  const wantsString = issues.some((i) => i.code === 'invalid_type' && i.expected === 'string' && i.path.join('.') === path.join('.'));
  if (wantsString && typeof typed !== 'string') next = setPath(raw, path, text, source);
  validate(next, source);
  return next;
}

function setPath(raw: Raw, path: string[], value: unknown, source: string): Raw {
  const out = structuredClone(raw);
  let node: Raw = out;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i]!;
    const child = node[key];
    if (child === undefined || child === null) node[key] = {};
    else if (!isPlainObject(child)) {
      throw new InputError(`${source}: ${path.slice(0, i + 1).join('.')} is a value, not a section, so it has no key '${path[i + 1]}'`);
    }
    if (EXCLUSIVE_PARENTS.has(path.slice(0, i + 1).join('.'))) node[key] = {};
    node = node[key] as Raw;
  }
  node[path[path.length - 1]!] = value;
  return out;
}

function validate(raw: unknown, source: string): ParsedTrainConfig {
  const r = trainConfigSchema.safeParse(raw, { reportInput: true });
  if (r.success) return r.data;
  const first = r.error.issues[0]!;
  const more = r.error.issues.length > 1 ? ` (and ${r.error.issues.length - 1} more)` : '';
  throw new InputError(`${source}: ${formatIssue(first, raw)}${more}`);
}

/**
 * One zod issue as "key.path: expected ..., got ...". `raw` is the object validated: "got" shows the value as
 * written there ('-8/255'), not as transformed (-0.0313...).
 */
export function formatIssue(issue: z.core.$ZodIssue, raw?: unknown): string {
  const path = issue.path.map(String).join('.');
  const at = path ? `${path}: ` : '';
  if (issue.code === 'unrecognized_keys') {
    const allowed = keysAt(issue.path.map(String));
    const keys = issue.keys.map((k) => `'${k}'`).join(', ');
    return `${at}unknown key${issue.keys.length > 1 ? 's' : ''} ${keys}${allowed ? ` (expected one of: ${allowed.join(', ')})` : ''}`;
  }
  let message = issue.message;
  if (!message.startsWith('expected')) {
    if (issue.code === 'invalid_type') message = `expected ${issue.expected}`;
    else if (issue.code === 'invalid_value') message = `expected one of ${issue.values.map(String).join('|')}`;
    else message = `expected a valid value (${message})`;
  }
  const written = valueAt(raw, issue.path);
  const input = written !== undefined ? written : (issue as { input?: unknown }).input;
  const got = input === undefined && issue.code === 'invalid_type' ? 'nothing' : show(input);
  return `${at}${message}, got ${got}`;
}

/** The keys a section accepts, for "unknown key" messages. */
function keysAt(path: string[]): string[] | undefined {
  let schema: unknown = trainConfigSchema;
  for (const key of [...path, '']) {
    // Unwrap default/optional/pipe wrappers down to the object.
    for (;;) {
      const def = (schema as { _zod?: { def?: { type: string; innerType?: unknown; in?: unknown } } })._zod?.def;
      if (!def) return undefined;
      if (def.innerType) schema = def.innerType;
      else if (def.type === 'pipe') schema = def.in;
      else break;
    }
    const shape = (schema as { shape?: Record<string, unknown> }).shape;
    if (!shape) return undefined;
    if (key === '') return Object.keys(shape);
    schema = shape[key];
  }
  return undefined;
}

/** Derives what depends on other fields and checks the constraints between fields. */
function finalize(parsed: ParsedTrainConfig, sourceOf: (paths: string[]) => string): TrainConfig {
  /** `related`: the other keys of the constraint; whichever was set last is blamed. */
  const fail = (path: string, message: string, related: string[] = []): never => {
    throw new InputError(`${sourceOf([path, ...related])}: ${path}: ${message}`);
  };
  const dataset = parsed.data.dataset;
  const datasetClasses = DATASET_CLASSES[dataset];
  const numClasses = parsed.model.numClasses ?? datasetClasses;
  if (numClasses !== datasetClasses) {
    fail('model.numClasses', `expected ${datasetClasses} (the number of classes of ${dataset}) or omitted, got ${numClasses}`, ['data.dataset']);
  }
  const { milestones, epochs } = parsed.schedule;
  for (let i = 0; i < milestones.length; i++) {
    if (i > 0 && milestones[i]! <= milestones[i - 1]!) {
      fail('schedule.milestones', `expected increasing epochs, got [${milestones.join(', ')}]`);
    }
  }
  if (parsed.schedule.warmupEpochs >= epochs && parsed.schedule.warmupEpochs > 0) {
    fail('schedule.warmupEpochs', `expected fewer warm-up epochs than schedule.epochs (${epochs}), got ${parsed.schedule.warmupEpochs}`, ['schedule.epochs']);
  }
  if (parsed.schedule.type === 'onecycle' && parsed.schedule.warmupEpochs > 0) {
    fail('schedule.warmupEpochs', `expected 0 with schedule.type onecycle (its warm-up is schedule.oneCycle.pctStart), got ${parsed.schedule.warmupEpochs}`, [
      'schedule.type',
    ]);
  }
  if (dataset === 'synthetic' && parsed.data.valSize >= parsed.data.synthetic.nTrain) {
    fail('data.valSize', `expected fewer validation images than data.synthetic.nTrain (${parsed.data.synthetic.nTrain}), got ${parsed.data.valSize}`, [
      'data.synthetic.nTrain',
      'data.dataset',
    ]);
  }
  const kd = isKdObjective(parsed.objective.type);
  if (kd && parsed.teacher.checkpoint === undefined) {
    fail('teacher.checkpoint', `expected the teacher's checkpoint directory (objective.type ${parsed.objective.type} distils a teacher), got nothing`);
  }
  return { ...parsed, model: { ...parsed.model, numClasses } };
}

// ---------------------------------------------------------------------------------------------------------------

/** Keys that change how a run looks or where it runs, not what it computes: left out of the hash. */
export const PRESENTATION_KEYS: Record<string, string[]> = { run: ['logFormat', 'progress', 'backend'], log: ['tensorboard'] };

/**
 * sha256 (hex) of the canonical JSON of the config (keys sorted). Two configs with the same hash train the
 * same model; run.logFormat, run.progress, run.backend and log.tensorboard are left out so that resuming with
 * another log format, on another device or with TensorBoard on keeps the hash.
 */
export function configHash(config: TrainConfig | ParsedTrainConfig): string {
  const copy = structuredClone(config) as unknown as Record<string, Record<string, unknown>>;
  for (const [sectionName, keys] of Object.entries(PRESENTATION_KEYS)) {
    const sec = copy[sectionName];
    if (sec) for (const k of keys) delete sec[k];
    // A section left empty (log) is dropped too, so configs from before it keep their hash.
    if (sec && Object.keys(sec).length === 0) delete copy[sectionName];
  }
  return createHash('sha256').update(canonicalJson(copy)).digest('hex');
}

/** JSON with object keys sorted at every level, so equal values give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isPlainObject(value)) {
    const keys = Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** The resolved config as YAML (what --print-config prints and what a run directory stores). */
export function configToYaml(config: TrainConfig, header?: string): string {
  const body = stringifyYaml(config, { lineWidth: 0 });
  return header
    ? `${header
        .split('\n')
        .map((l) => `# ${l}`.trimEnd())
        .join('\n')}\n${body}`
    : body;
}

/** configs/schema.json of this package. */
export const SCHEMA_PATH = fileURLToPath(new URL('../../../configs/schema.json', import.meta.url));

/** The text of configs/schema.json (stable: 2-space JSON with a final newline). */
export function jsonSchemaText(): string {
  return `${JSON.stringify(trainConfigJsonSchema(), null, 2)}\n`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function leafPaths(obj: Raw, prefix: string[] = []): string[] {
  return Object.entries(obj).flatMap(([k, v]) => (isPlainObject(v) ? [[...prefix, k].join('.'), ...leafPaths(v, [...prefix, k])] : [[...prefix, k].join('.')]));
}

function show(v: unknown): string {
  // YAML's spellings: JSON would print NaN and Infinity as null.
  if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? '.nan' : v > 0 ? '.inf' : '-.inf';
  if (typeof v === 'string') {
    // Escaped (control characters would reach the terminal) and short.
    const body = JSON.stringify(v.length > 40 ? v.slice(0, 40) : v)
      .slice(1, -1)
      .replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    return `'${body}'${v.length > 40 ? '...' : ''}`;
  }
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
