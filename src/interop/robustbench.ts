/**
 * RobustBench models by name: `robustbench:Cui2023Decoupled_WRN-34-10` → the table entry (robustbench-table.ts),
 * the file (cache, RobustBench's own `models/` folder, or a download from Google Drive as RobustBench does it), and
 * the model with the entry's architecture and input normalisation, its state_dict imported strictly.
 *
 * The cache is `$IKL_CACHE/robustbench/<dataset>/<threat>/<name>.pt` (IKL_CACHE defaults to ~/.cache/ikl-at);
 * `./models/<dataset>/<threat>/<name>.pt`, where `robustbench.utils.load_model` puts its files, is used as it is.
 * RobustBench publishes no checksums: the sha256 of a file is recorded in `$IKL_CACHE/robustbench/checksums.json`
 * the first time it is used, and a file that later differs is refused by name.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { dirname, join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { downloadFile } from '../data/download.js';
import { InputError } from '../errors.js';
import { cacheDir, writeFileAtomic } from '../files.js';
import { silentLogger, type Logger } from '../log.js';
import { NORMALIZATION_LAYER, archDef, buildNormalized, setNormalization } from '../models/archs.js';
import { parseArch } from '../models/index.js';
import { importIntoModel, readStateDictFile, type WeightSource } from './index.js';
import { mappingFor } from './mapping.js';
import { ROBUSTBENCH_LACKING, ROBUSTBENCH_MODELS as ROBUSTBENCH_TABLE } from './robustbench-table.js';
import type { RobustBenchEntry } from './robustbench-types.js';

export { ROBUSTBENCH_COMMIT, ROBUSTBENCH_LACKING, ROBUSTBENCH_MODELS } from './robustbench-table.js';
export type { RobustBenchEntry, RobustBenchInfo, RobustBenchLacking } from './robustbench-types.js';

export const ROBUSTBENCH_PREFIX = 'robustbench:';

/** RobustBench's download URL (robustbench/utils.py `download_gdrive`); `IKL_GDRIVE_URL` replaces it (mirrors, tests). */
export const GDRIVE_URL = 'https://docs.google.com/uc?export=download&confirm=t';

export const isRobustBenchRef = (s: string): boolean => s.startsWith(ROBUSTBENCH_PREFIX);

type Threat = 'Linf' | 'L2';

/**
 * The entry a reference names: `robustbench:<name>` or `robustbench:<dataset>/<threat>/<name>`. A name on several
 * leaderboards is told apart by `dataset` (--dataset) and `threat` (from --norm); `source` names the flag in errors.
 */
export function findRobustBenchEntry(
  ref: string,
  opts: { dataset?: string | null; threat?: Threat; source?: string; table?: readonly RobustBenchEntry[] } = {},
): RobustBenchEntry {
  const source = opts.source ?? '--model';
  const table = opts.table ?? ROBUSTBENCH_TABLE;
  const body = ref.slice(ROBUSTBENCH_PREFIX.length);
  const parts = body.split('/');
  const [dataset, threat, name] = parts.length === 3 ? parts : [opts.dataset ?? undefined, opts.threat, body];
  if (!name) throw new InputError(`${source} ${ref}: expected robustbench:<name> or robustbench:<dataset>/<threat>/<name>`);
  const matches = table.filter((e) => e.name === name && (dataset == null || e.dataset === dataset));
  const picked = matches.filter((e) => threat === undefined || e.threat === threat);
  if (picked.length === 1) return picked[0]!;
  // RobustBench's default threat model is Linf: a name on both leaderboards without --norm is the Linf entry.
  if (picked.length > 1 && threat === undefined && picked.filter((e) => e.threat === 'Linf').length === 1) return picked.find((e) => e.threat === 'Linf')!;
  if (picked.length > 1) {
    const where = picked.map((e) => `${e.dataset}/${e.threat}`).join(', ');
    throw new InputError(`${source} ${ref}: on several leaderboards (${where}); give --dataset, or write robustbench:<dataset>/<threat>/${name}`);
  }
  const lacking = ROBUSTBENCH_LACKING.find((e) => e.name === name && (dataset == null || e.dataset === dataset));
  if (lacking) {
    throw new InputError(
      `${source} ${ref}: RobustBench's ${lacking.dataset}/${lacking.threat} model is a ${lacking.architecture} (${lacking.why}), an architecture the zoo does not build`,
    );
  }
  const other = table
    .filter((e) => e.name === name)
    .map((e) => `${e.dataset}/${e.threat}`)
    .join(', ');
  if (other) throw new InputError(`${source} ${ref}: no ${dataset ?? ''}${threat ? `/${threat}` : ''} entry of that name (it exists for ${other})`);
  // The names sharing the longest prefix with the one given (a typo keeps the author and year).
  const common = (a: string): number => [...a.toLowerCase()].findIndex((ch, i) => ch !== name.toLowerCase()[i]);
  const score = (a: string): number => (common(a) === -1 ? a.length : common(a));
  const names = [...new Set(table.map((e) => e.name))].sort((a, b) => score(b) - score(a));
  const near = names.filter((n) => score(n) >= 4).slice(0, 4);
  throw new InputError(`${source} ${ref}: not a RobustBench CIFAR-10/100 Linf/L2 model name${near.length ? ` (similar: ${near.join(', ')})` : ''}`);
}

/** `<cache>/robustbench`, the cache of src/files.ts (`$IKL_CACHE`, default ~/.cache/ikl-at). */
export function robustBenchCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheDir(env), 'robustbench');
}

/** Where the file of an entry is looked for: our cache first, then RobustBench's own `models/` layout (relative to the cwd). */
export function robustBenchPaths(entry: RobustBenchEntry, env: NodeJS.ProcessEnv = process.env): { cache: string; robustbench: string } {
  const rel = join(entry.dataset, entry.threat, `${entry.name}.pt`);
  return { cache: join(robustBenchCacheRoot(env), rel), robustbench: join('models', rel) };
}

const entryKey = (e: RobustBenchEntry): string => `${e.dataset}/${e.threat}/${e.name}`;

function readChecksums(file: string): Record<string, string> {
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
  } catch {
    throw new InputError(`${file}: not JSON (the recorded sha256 of RobustBench files; delete it to record them again)`);
  }
}

/**
 * Compares `sha256` with the one recorded for the entry, recording it when there is none. A differing file is
 * refused: it is not the file this machine first used under that name.
 */
export async function checkRecordedSha256(
  entry: RobustBenchEntry,
  file: string,
  sha256: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<'recorded' | 'matches'> {
  const record = join(robustBenchCacheRoot(env), 'checksums.json');
  const sums = readChecksums(record);
  const known = sums[entryKey(entry)];
  if (known === sha256) return 'matches';
  if (known !== undefined) {
    throw new InputError(
      `${file}: sha256 ${sha256}, but ${record} records ${known} for ${entryKey(entry)} (the file first used under that name); delete the file to download it again, or its line in ${record} to accept this one`,
    );
  }
  await mkdir(dirname(record), { recursive: true });
  await writeFileAtomic(record, `${JSON.stringify({ ...sums, [entryKey(entry)]: sha256 }, null, 2)}\n`);
  return 'recorded';
}

export interface RobustBenchFileOptions {
  /** Download when no file is found (default true). */
  download?: boolean;
  /** Google Drive URL with `export=download`; default IKL_GDRIVE_URL or RobustBench's. */
  gdriveUrl?: string;
  logger?: Logger;
  progress?: boolean;
  stallTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** What to do by hand when the file cannot be downloaded (the exit-2 message). */
function offlineHelp(entry: RobustBenchEntry, paths: { cache: string; robustbench: string }): string {
  return `download https://drive.google.com/uc?id=${entry.gdriveId} (RobustBench's ${entryKey(entry)}) and put it at ${paths.cache} (or ${paths.robustbench}, RobustBench's own layout)`;
}

/**
 * Google Drive's answer to a large file is a page asking to confirm the download. RobustBench's `download_gdrive`
 * takes the token of the `download_warning*` cookie; today's page is a form (`drive.usercontent.google.com`,
 * hidden `id`, `confirm`, `uuid` fields), and older ones a `/uc?export=download&confirm=` link. Any of the three
 * gives the URL of the file; a page with none (quota exceeded, file no longer shared) is refused.
 */
export function gdriveConfirmation(help: string): (res: Response) => Promise<string | null> {
  return async (res) => {
    if (!(res.headers.get('content-type') ?? '').includes('text/html')) return null;
    const cookies = res.headers.getSetCookie();
    const html = (await res.text()).slice(0, 1 << 20);
    const token = cookies.map((c) => /^download_warning[^=]*=([^;]*)/.exec(c)?.[1]).find((t) => t);
    if (token) {
      const u = new URL(res.url);
      u.searchParams.set('confirm', token);
      return u.toString();
    }
    const unescape = (s: string): string =>
      s
        .replace(/&amp;/g, '&')
        .replace(/&quot;/g, '"')
        .replace(/&#39;/g, "'");
    const form = /<form[^>]*id="download-form"[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
    if (form) {
      const u = new URL(unescape(form[1]!), res.url);
      for (const m of form[2]!.matchAll(/<input[^>]*type="hidden"[^>]*>/gi)) {
        const name = /name="([^"]*)"/.exec(m[0])?.[1];
        const value = /value="([^"]*)"/.exec(m[0])?.[1] ?? '';
        if (name) u.searchParams.set(name, unescape(value));
      }
      return u.toString();
    }
    const link = /href="(\/uc\?export=download[^"]*confirm=[^"]*)"/.exec(html);
    if (link) return new URL(unescape(link[1]!), res.url).toString();
    const title = /<title>([^<]*)<\/title>/i.exec(html)?.[1]?.trim() ?? 'no title';
    throw new InputError(`Google Drive answered with a page, not the file ("${title}": quota exceeded or no longer shared?); ${help}`);
  };
}

/**
 * The file of an entry: found in the cache or RobustBench's layout, else downloaded into the cache (resumable;
 * its sha256 recorded). Without a network: an InputError saying which file to put where.
 */
export async function ensureRobustBenchFile(entry: RobustBenchEntry, opts: RobustBenchFileOptions = {}): Promise<string> {
  const env = opts.env ?? process.env;
  const paths = robustBenchPaths(entry, env);
  for (const p of [paths.cache, paths.robustbench]) if (existsSync(p)) return p;
  const help = offlineHelp(entry, paths);
  if (opts.download === false) throw new InputError(`robustbench:${entry.name}: no file at ${paths.cache} and downloading is disabled; ${help}`);
  const base = opts.gdriveUrl ?? env.IKL_GDRIVE_URL ?? GDRIVE_URL;
  const url = `${base}${base.includes('?') ? '&' : '?'}id=${encodeURIComponent(entry.gdriveId)}`;
  const log = opts.logger ?? silentLogger;
  const stallMs = opts.stallTimeoutMs ?? 60_000;
  await mkdir(dirname(paths.cache), { recursive: true });
  // Shards of one evaluation (scripts/eval-shards.sh) start together: one downloads, the others wait for its file.
  const lock = `${paths.cache}.lock`;
  if (!(await takeLock(lock, paths.cache, stallMs, log))) return paths.cache;
  try {
    if (existsSync(paths.cache)) return paths.cache; // finished by the process that held the lock before us
    const { digest, bytes } = await downloadFile(url, paths.cache, {
      name: `robustbench:${entry.name}`,
      offlineHelp: help,
      log,
      progress: opts.progress ?? process.stderr.isTTY === true,
      stallMs,
      hash: 'sha256',
      resumable: true,
      follow: gdriveConfirmation(help),
    });
    log.info({ file: paths.cache, bytes, sha256: digest }, `downloaded robustbench:${entry.name}`);
    return paths.cache;
  } finally {
    await rm(lock, { force: true });
  }
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Takes `lock` (O_EXCL; it names host and pid), or waits while another process downloads `dest`: false when
 * `dest` appeared meanwhile. A lock of a dead process on this host is taken over; a lock whose download (lock and
 * `.part`) has not changed for `stallMs` is reported with the file to delete.
 */
async function takeLock(lock: string, dest: string, stallMs: number, log: Logger): Promise<boolean> {
  const me = `${hostname()} ${process.pid}`;
  let told = false;
  for (;;) {
    try {
      await writeFile(lock, me, { flag: 'wx' });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (existsSync(dest)) return false;
    const holder = (await readFile(lock, 'utf8').catch(() => '')).trim();
    const [host, pid] = holder.split(' ');
    if (host === hostname() && pid !== undefined && Number(pid) !== process.pid && !isAlive(Number(pid))) {
      await rm(lock, { force: true });
      continue;
    }
    const mtime = async (f: string): Promise<number> => (await stat(f).catch(() => null))?.mtimeMs ?? 0;
    const last = Math.max(await mtime(lock), await mtime(`${dest}.part`));
    if (last > 0 && Date.now() - last > stallMs) {
      throw new InputError(
        `${lock}: another download (${holder || 'unknown process'}) has not progressed for ${stallMs / 1000} s; delete the lock if no process is downloading`,
      );
    }
    if (!told) log.info({ lock, holder }, `waiting for ${holder} to download ${dest}`);
    told = true;
    await sleep(500);
  }
}

export interface RobustBenchModel {
  model: tf.LayersModel;
  entry: RobustBenchEntry;
  arch: string;
  numClasses: number;
  source: WeightSource;
}

/**
 * The entry's model with the weights of `file`: its architecture (normalisation layer in front when the module
 * normalises), the statistics it uses, and every key of the state_dict imported strictly. The `mu`/`sigma`
 * buffers some modules carry must equal the table's statistics; RobustBench's `model.` prefix is stripped as
 * `load_model` does.
 */
export async function loadRobustBenchModel(entry: RobustBenchEntry, file: string, env: NodeJS.ProcessEnv = process.env): Promise<RobustBenchModel> {
  const flat = await readStateDictFile(file);
  await checkRecordedSha256(entry, file, flat.source.sha256, env);
  const tensors = new Map(flat.tensors);
  if (tensors.size > 0 && [...tensors.keys()].every((k) => k.startsWith('model.'))) {
    for (const [k, v] of [...tensors]) {
      tensors.delete(k);
      tensors.set(k.slice('model.'.length), v);
    }
  }
  const buffers = entry.normalization?.buffers ?? [];
  for (const [i, b] of buffers.entries()) {
    const t = tensors.get(b);
    const want = i === 0 ? entry.normalization!.mean : entry.normalization!.std;
    if (!t) throw new InputError(`${file}: key '${b}' missing (RobustBench's ${entry.name} keeps its input statistics there)`);
    const got = Array.from(t.read());
    if (got.length !== 3 || got.some((v, c) => Math.abs(v - want[c]!) > 1e-6)) {
      throw new InputError(`${file}: ${b} = [${got.join(', ')}], expected [${want.join(', ')}] for ${entry.name}`);
    }
    tensors.delete(b);
  }
  const arch = parseArch(entry.arch, `robustbench:${entry.name}`);
  const normalized = entry.normalization !== null;
  const model = normalized ? buildNormalized(arch, entry.numClasses) : archDef(arch).build(entry.numClasses);
  try {
    if (normalized) setNormalization(model, entry.normalization!.mean, entry.normalization!.std);
    else if (model.layers.some((l) => l.name === NORMALIZATION_LAYER)) throw new Error(`${entry.arch} normalises but ${entry.name} has no statistics`);
    importIntoModel(model, mappingFor(entry.family), { ...flat, tensors }, file, `RobustBench's ${entry.name} (${entry.robustbench})`);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, entry, arch: entry.arch, numClasses: entry.numClasses, source: flat.source };
}

/** `robustbench:<name>` → the model, its file found or downloaded. */
export async function loadRobustBench(
  ref: string,
  opts: RobustBenchFileOptions & { dataset?: string | null; threat?: Threat; source?: string; table?: readonly RobustBenchEntry[] } = {},
): Promise<RobustBenchModel> {
  const entry = findRobustBenchEntry(ref, opts);
  const file = await ensureRobustBenchFile(entry, opts);
  return loadRobustBenchModel(entry, file, opts.env);
}

export { compareWithRobustBench, parseRobustBenchEps, type RobustBenchComparison } from './robustbench-info.js';
