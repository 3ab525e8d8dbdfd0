/**
 * Atomic checkpoint directories.
 *
 * Layout of a run directory (`name` is last, best, wa...):
 *
 *     last -> last.g000012        symlink, the checkpoint readers see
 *     last.g000011/               previous generation, kept as the fallback
 *     last.g000012/               model.json weights.bin tensors.json tensors.bin checkpoint.json
 *
 * Why a symlink: renaming a non-empty directory over another is not atomic (POSIX refuses it, and
 * "rename old away, rename new in" has a window where neither exists). Renaming a symlink over a symlink is one
 * atomic rename(2). So a write goes: files into a hidden temporary directory, each fsynced, checkpoint.json
 * (with the size and sha256 of every other file) last, fsync the directory, rename it to the next generation
 * name, point a temporary symlink at it and rename that over `name`, fsync the run directory. At every instant
 * `name` points to a complete, fsynced generation. Generations older than the previous one are deleted after
 * the swap; leftovers of an interrupted write (hidden temp dirs, generations without checkpoint.json) are
 * skipped by readers and removed by the next write. One writer per run directory is assumed.
 *
 * Readers need nothing special: `run/last/model.json` resolves through the link, and `cp -rL run/last x`
 * gives a plain directory that readCheckpoint accepts too.
 */
import { mkdir, readdir, readFile, realpath, rename, rm, symlink, lstat, readlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { configHash } from '../config/resolve.js';
import { fileError, InputError } from '../errors.js';
import { DTYPE_BYTES, loadModel, saveModel } from '../models/index.js';
import { readVerified, syncAndDigest, syncDir, writeFileDurable } from './files.js';
import { weightsIdentity } from './identity.js';
import {
  CHECKPOINT_FILES,
  CHECKPOINT_FORMAT,
  CHECKPOINT_VERSION,
  type CheckpointData,
  type CheckpointJson,
  type CheckpointMeta,
  type CheckpointState,
  type FileDigest,
  type LoadedCheckpoint,
  type NamedTensors,
  type TensorEntry,
} from './types.js';

export interface WriteOptions {
  /** Generations kept after a write, the new one included (default 2: the new one and its fallback). */
  keepGenerations?: number;
}

export interface WriteResult {
  /** The generation directory written (what `dir` now points to). */
  generationDir: string;
  files: Record<string, FileDigest>;
}

const GEN_DIGITS = 6;

function generationName(name: string, seq: number): string {
  return `${name}.g${String(seq).padStart(GEN_DIGITS, '0')}`;
}

function parseGeneration(name: string, entry: string): number | undefined {
  if (!entry.startsWith(`${name}.g`)) return undefined;
  const rest = entry.slice(name.length + 2);
  return /^\d+$/.test(rest) ? Number(rest) : undefined;
}

/** Generation directories of `dir` (e.g. run/last.g000003), newest first. */
export async function listGenerations(dir: string): Promise<Array<{ seq: number; path: string }>> {
  const parent = dirname(resolve(dir));
  const name = basename(resolve(dir));
  let entries: string[];
  try {
    entries = await readdir(parent);
  } catch {
    return [];
  }
  return entries
    .map((e) => ({ seq: parseGeneration(name, e), path: join(parent, e) }))
    .filter((g): g is { seq: number; path: string } => g.seq !== undefined)
    .sort((a, b) => b.seq - a.seq);
}

/**
 * Writes a checkpoint atomically at `dir` (a path such as run/last): readers see either the previous
 * checkpoint or the new one, complete, never a mixture. Tensors are read, not disposed.
 */
export async function writeCheckpoint(dir: string, data: CheckpointData, opts: WriteOptions = {}): Promise<WriteResult> {
  try {
    return await writeCheckpointFiles(dir, data, opts);
  } catch (e) {
    // ENOSPC, EACCES...: name the checkpoint, not the temporary file the error happened on.
    throw fileError(dir, e, 'write the checkpoint', 'the previous checkpoint is intact');
  }
}

async function writeCheckpointFiles(dir: string, data: CheckpointData, opts: WriteOptions): Promise<WriteResult> {
  const keep = Math.max(1, opts.keepGenerations ?? 2);
  const target = resolve(dir);
  const parent = dirname(target);
  const name = basename(target);
  await mkdir(parent, { recursive: true });
  await adoptPlainDirectory(target);

  const seq = ((await listGenerations(target))[0]?.seq ?? 0) + 1;
  const genName = generationName(name, seq);
  const tmp = join(parent, `.${genName}.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp);
  let files: Record<string, FileDigest>;
  try {
    files = await writeContents(tmp, data);
    await syncDir(tmp);
  } catch (e) {
    // The previous checkpoint is untouched; do not leave the half-written directory behind.
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  const genDir = join(parent, genName);
  await rename(tmp, genDir);
  await syncDir(parent);
  await swapLink(target, genName);
  await syncDir(parent);
  await prune(target, keep);
  return { generationDir: genDir, files };
}

async function writeContents(tmp: string, data: CheckpointData): Promise<Record<string, FileDigest>> {
  const files: Record<string, FileDigest> = {};
  // One definition of the tfjs layers format (src/models/io.ts); here we only add durability and checksums.
  await saveModel(data.model, tmp);
  for (const f of [CHECKPOINT_FILES.weights, CHECKPOINT_FILES.modelJson]) files[f] = await syncAndDigest(join(tmp, f));
  const { manifest, bytes } = await encodeTensors(data.tensors ?? {});
  files[CHECKPOINT_FILES.tensors] = await writeFileDurable(join(tmp, CHECKPOINT_FILES.tensors), bytes);
  files[CHECKPOINT_FILES.tensorsManifest] = await writeFileDurable(join(tmp, CHECKPOINT_FILES.tensorsManifest), utf8(JSON.stringify(manifest, null, 1)));
  const meta: CheckpointMeta = { ...data.meta };
  if (meta.config && !meta.configHash) meta.configHash = configHash(meta.config);
  const json: CheckpointJson = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    createdAt: new Date().toISOString(),
    ...meta,
    state: data.state ?? {},
    files,
  };
  // Written last: its presence is what makes the directory a checkpoint.
  await writeFileDurable(join(tmp, CHECKPOINT_FILES.meta), utf8(`${JSON.stringify(json, null, 2)}\n`));
  return files;
}

/** A plain directory at `target` (older layout, or copied by hand) becomes the oldest generation. */
async function adoptPlainDirectory(target: string): Promise<void> {
  let st;
  try {
    st = await lstat(target);
  } catch {
    return;
  }
  if (st.isSymbolicLink()) return;
  if (!st.isDirectory()) throw new InputError(`${target}: exists and is not a checkpoint directory`);
  const seq = ((await listGenerations(target))[0]?.seq ?? 0) + 1;
  await rename(target, join(dirname(target), generationName(basename(target), seq)));
}

async function swapLink(target: string, genName: string): Promise<void> {
  const tmpLink = join(dirname(target), `.${basename(target)}.link-${process.pid}`);
  await rm(tmpLink, { force: true });
  // Relative target: the run directory can be moved or copied. Windows needs a junction (absolute path).
  if (process.platform === 'win32') await symlink(join(dirname(target), genName), tmpLink, 'junction');
  else await symlink(genName, tmpLink, 'dir');
  await rename(tmpLink, target);
}

/**
 * Keeps the current generation and the newest intact ones up to `keep` in all. Fallbacks are verified (sizes
 * and sha256) before being counted: after a resume that skipped a corrupt generation, the corrupt one goes and
 * the intact one it fell back to stays.
 */
async function prune(target: string, keep: number): Promise<void> {
  const parent = dirname(target);
  const name = basename(target);
  const current = await currentGenerationName(target);
  let kept = 1;
  for (const g of await listGenerations(target)) {
    if (basename(g.path) === current) continue;
    if (kept < keep && (await isIntact(g.path))) kept++;
    else await rm(g.path, { recursive: true, force: true });
  }
  // Leftovers of writes that were killed (this process's own temp names were already reused above).
  for (const e of await readdir(parent)) {
    if (e.startsWith(`.${name}.g`) && e.includes('.tmp-')) await rm(join(parent, e), { recursive: true, force: true });
    if (e.startsWith(`.${name}.link-`)) await rm(join(parent, e), { force: true });
  }
}

async function isIntact(dir: string): Promise<boolean> {
  try {
    await verifyCheckpoint(dir);
    return true;
  } catch (e) {
    if (e instanceof InputError) return false;
    throw e;
  }
}

async function currentGenerationName(target: string): Promise<string | undefined> {
  try {
    return basename(await readlink(target));
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Reading.

export interface ReadOptions {
  /** Also load the named extra tensors (optimizer slots, weight average...). Default false. */
  withTensors?: boolean;
}

/** What verifyCheckpoint returns: everything but the tensors, after the integrity check. */
export interface VerifiedCheckpoint {
  meta: CheckpointMeta;
  state: CheckpointState;
  files: Record<string, FileDigest>;
  /** The real directory (symlinks resolved). */
  dir: string;
}

/**
 * Checks a checkpoint directory without building anything: checkpoint.json present and readable, format
 * known, every file present with its recorded size and sha256. Throws InputError naming the bad file.
 */
export async function verifyCheckpoint(dir: string): Promise<VerifiedCheckpoint> {
  const { json, real } = await readMetaFile(dir);
  for (const [file, digest] of Object.entries(json.files)) {
    const r = await readVerified(join(real, file), digest);
    if ('problem' in r) throw new InputError(`${join(dir, file)}: ${r.problem}`);
  }
  return { meta: metaOf(json), state: json.state ?? {}, files: json.files, dir: real };
}

/**
 * Reads a checkpoint directory (or a link to one, such as run/last), verifying every file's size and sha256.
 * A missing, incomplete or corrupt checkpoint is an InputError naming the file. The caller owns (disposes)
 * the model and the tensors.
 */
export async function readCheckpoint(dir: string, opts: ReadOptions = {}): Promise<LoadedCheckpoint> {
  const { json, real } = await readMetaFile(dir);
  const read = async (file: string): Promise<Uint8Array> => {
    const digest = json.files[file];
    if (!digest) throw new InputError(`${join(dir, CHECKPOINT_FILES.meta)}: lists no ${file}; not a complete checkpoint`);
    const r = await readVerified(join(real, file), digest);
    if ('problem' in r) throw new InputError(`${join(dir, file)}: ${r.problem}`);
    return r.bytes;
  };
  // Verified here, then read by loadModel: every byte the model is built from has passed the checksum.
  const modelJson = parseJson(await read(CHECKPOINT_FILES.modelJson), join(dir, CHECKPOINT_FILES.modelJson)) as { weightsManifest?: unknown };
  await read(CHECKPOINT_FILES.weights);
  const manifest0 = Array.isArray(modelJson.weightsManifest) ? modelJson.weightsManifest : [];
  const weightsSha256 = weightsIdentity(json.files[CHECKPOINT_FILES.weights]!.sha256, manifest0 as Parameters<typeof weightsIdentity>[1]);
  let manifest: TensorEntry[] = [];
  let tensorBytes: Uint8Array = new Uint8Array(0);
  if (opts.withTensors) {
    manifest = parseJson(await read(CHECKPOINT_FILES.tensorsManifest), join(dir, CHECKPOINT_FILES.tensorsManifest)) as TensorEntry[];
    tensorBytes = await read(CHECKPOINT_FILES.tensors);
  }
  let model: tf.LayersModel;
  try {
    model = await loadModel(real);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${join(dir, CHECKPOINT_FILES.modelJson)}: cannot build the model (${(e as Error).message.split('\n')[0]})`);
  }
  let tensors: NamedTensors;
  try {
    tensors = decodeTensors(manifest, tensorBytes, join(dir, CHECKPOINT_FILES.tensorsManifest));
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, meta: metaOf(json), state: json.state ?? {}, tensors, dir: real, weightsSha256 };
}

async function readMetaFile(dir: string): Promise<{ json: CheckpointJson; real: string }> {
  let real: string;
  try {
    real = await realpath(dir);
  } catch {
    throw new InputError(`${dir}: no such checkpoint directory`);
  }
  const metaPath = join(dir, CHECKPOINT_FILES.meta);
  let text: string;
  try {
    text = await readFile(join(real, CHECKPOINT_FILES.meta), 'utf8');
  } catch {
    throw new InputError(`${metaPath}: missing; not a checkpoint directory, or its write was interrupted${await runDirHint(dir)}`);
  }
  const json = parseJson(utf8(text), metaPath) as Partial<CheckpointJson>;
  if (json.format !== CHECKPOINT_FORMAT) throw new InputError(`${metaPath}: format: expected '${CHECKPOINT_FORMAT}', got ${JSON.stringify(json.format)}`);
  if (typeof json.version !== 'number' || json.version > CHECKPOINT_VERSION) {
    throw new InputError(`${metaPath}: version: expected <= ${CHECKPOINT_VERSION} (written by a newer ikl-at?), got ${JSON.stringify(json.version)}`);
  }
  if (typeof json.files !== 'object' || json.files === null) throw new InputError(`${metaPath}: files: expected the table of file checksums`);
  for (const key of ['arch', 'dataset'] as const) {
    if (typeof json[key] !== 'string') throw new InputError(`${metaPath}: ${key}: expected a string, got ${JSON.stringify(json[key])}`);
  }
  for (const key of ['numClasses', 'epoch', 'step'] as const) {
    if (!Number.isInteger(json[key])) throw new InputError(`${metaPath}: ${key}: expected an integer, got ${JSON.stringify(json[key])}`);
  }
  return { json: json as CheckpointJson, real };
}

/** A run directory given where a checkpoint is expected: name the checkpoints it holds. */
async function runDirHint(dir: string): Promise<string> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return '';
  }
  const found = ['wa', 'best', 'last'].filter((n) => entries.includes(n));
  if (found.length === 0) return '';
  const wa = found.includes('wa') ? '; wa/, the weight average, is the one to evaluate' : '';
  return ` (${dir} looks like a run directory: use one of its checkpoints, ${found.map((n) => join(dir, n)).join(', ')}${wa})`;
}

function metaOf(json: CheckpointJson): CheckpointMeta {
  const { format: _f, version: _v, createdAt: _c, state: _s, files: _files, ...meta } = json;
  return meta;
}

function parseJson(bytes: Uint8Array, path: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new InputError(`${path}: invalid JSON (${(e as Error).message})`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Resuming.

export interface ResumePoint {
  /** Generation directory to read with readCheckpoint. */
  dir: string;
  meta: CheckpointMeta;
  state: CheckpointState;
  /** One per newer generation that failed its integrity check and was skipped. */
  warnings: string[];
}

/**
 * The newest intact checkpoint `name` (default last) of a run directory: generations are tried newest first
 * and each one that fails its integrity check is skipped with a warning (passed to `warn` too). Undefined when
 * the run has none (a fresh run); an InputError when there are some but none is intact.
 */
export async function findResumableCheckpoint(
  runDir: string,
  opts: { name?: string; warn?: (message: string) => void } = {},
): Promise<ResumePoint | undefined> {
  const target = join(runDir, opts.name ?? 'last');
  const candidates = (await listGenerations(target)).map((g) => g.path);
  try {
    const st = await lstat(target);
    // A plain directory (copied by hand, or from an older layout) counts as the newest candidate.
    if (st.isDirectory() && !st.isSymbolicLink()) candidates.unshift(target);
  } catch {
    // no `last` link: generations alone decide (a crash between writing a generation and linking it)
  }
  if (candidates.length === 0) return undefined;
  const warnings: string[] = [];
  for (const dir of candidates) {
    try {
      const v = await verifyCheckpoint(dir);
      return { dir: v.dir, meta: v.meta, state: v.state, warnings };
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      const w = `skipping checkpoint ${dir}: ${e.message}`;
      warnings.push(w);
      opts.warn?.(w);
    }
  }
  throw new InputError(`${runDir}: no intact checkpoint to resume from (${warnings.join('; ')})`);
}

// ---------------------------------------------------------------------------------------------------------------
// Model and tensor encoding.

async function encodeTensors(tensors: NamedTensors): Promise<{ manifest: TensorEntry[]; bytes: Uint8Array }> {
  const manifest: TensorEntry[] = [];
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of Object.keys(tensors).sort()) {
    const t = tensors[name]!;
    if (!(t.dtype in DTYPE_BYTES)) throw new Error(`checkpoint tensor '${name}': dtype ${t.dtype} is not supported`);
    const dtype = t.dtype as TensorEntry['dtype'];
    const values = await t.data();
    // Typed arrays are little-endian on every platform Node runs on; the format is defined as little-endian.
    const raw = dtype === 'bool' ? Uint8Array.from(values as ArrayLike<number>) : new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    const pad = (8 - (offset % 8)) % 8;
    if (pad) chunks.push(new Uint8Array(pad));
    offset += pad;
    manifest.push({ name, dtype, shape: [...t.shape], offset, byteLength: raw.byteLength });
    chunks.push(raw.slice());
    offset += raw.byteLength;
  }
  const bytes = new Uint8Array(offset);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  return { manifest, bytes };
}

function decodeTensors(manifest: TensorEntry[], bytes: Uint8Array, path: string): NamedTensors {
  if (!Array.isArray(manifest)) throw new InputError(`${path}: expected a list of tensors`);
  const out: NamedTensors = {};
  try {
    for (const e of manifest) {
      const per = DTYPE_BYTES[e.dtype];
      const n = e.shape.reduce((a, b) => a * b, 1);
      if (per === undefined || n * per !== e.byteLength || e.offset + e.byteLength > bytes.byteLength) {
        throw new InputError(`${path}: tensor '${e.name}': shape [${e.shape}] ${e.dtype} does not match its ${e.byteLength} bytes at ${e.offset}`);
      }
      const slice = bytes.slice(e.offset, e.offset + e.byteLength);
      const values = e.dtype === 'float32' ? new Float32Array(slice.buffer) : e.dtype === 'int32' ? new Int32Array(slice.buffer) : slice;
      out[e.name] = tf.tensor(values, e.shape, e.dtype);
    }
  } catch (err) {
    tf.dispose(Object.values(out));
    throw err;
  }
  return out;
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
