/**
 * PyTorch interop: published PyTorch checkpoints (zip / legacy .pt, .safetensors) into the model zoo, and our
 * checkpoints out as PyTorch state_dicts under the official key names (load_state_dict(strict=True) accepts them).
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { sha256 } from '../checkpoint/files.js';
import { InputError, printable } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { NORMALIZATION_LAYER, archDef, normalizationStats, setNormalization } from '../models/archs.js';
import { parseArch } from '../models/index.js';
import { MODEL_ARCHS_HELP, isModelArch, type ModelArch } from '../models/types.js';
import { compareKeys, describeMismatch, expectedKeys, readStateDict, writeStateDict } from './convert.js';
import { FormatError, readWeightFile, writeSafetensors, writeTorchZip, type OutTensor, type WeightFormat } from './formats.js';
import { mappingFor, recogniseArch, type TorchMapping } from './mapping.js';
import { flattenStateDict, type FlatStateDict } from './statedict.js';

export { DEFAULT_MAPPING, mappingFor, recogniseArch, ruleMapping, type TorchMapping, type Family } from './mapping.js';
export { expectedKeys, compareKeys, readStateDict } from './convert.js';
export { readWeightFile, writeSafetensors, writeTorchZip, sniffFormat, FormatError, type TorchTensor, type OutTensor } from './formats.js';
export { flattenStateDict, type FlatStateDict } from './statedict.js';

/** Where imported weights came from (goes into evaluation reports). */
export interface WeightSource {
  file: string;
  sha256: string;
  format: WeightFormat;
  /** Container key the state_dict was found under ('' for a bare state_dict). */
  container: string;
  /** Prefix stripped from the keys ('' for none). */
  prefix: string;
}

/** Is this path a weight file (as opposed to a checkpoint directory)? */
export async function isWeightFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * A weight file's bytes → its state_dict. Every problem is an InputError naming `label`, on one line with the
 * file's own text escaped (see printable): the reader's budgets bound its time and memory whatever the bytes.
 */
export function parseStateDict(buf: Uint8Array, label: string): FlatStateDict & { format: WeightFormat } {
  let parsed: ReturnType<typeof readWeightFile>;
  try {
    parsed = readWeightFile(buf);
  } catch (e) {
    throw new InputError(`${label}: ${printable(e instanceof FormatError ? e.message : String(e))}`);
  }
  const flat = flattenStateDict(parsed.value);
  if ('problem' in flat) throw new InputError(`${label}: ${printable(flat.problem, 300)}`);
  return { ...flat, format: parsed.format };
}

/** Reads a weight file and finds its state_dict. Every problem is an InputError naming the file. */
export async function readStateDictFile(file: string): Promise<FlatStateDict & { source: WeightSource }> {
  let buf: Uint8Array;
  try {
    buf = new Uint8Array(await readFile(file));
  } catch (e) {
    throw new InputError(`${file}: cannot read the weight file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const { format, ...flat } = parseStateDict(buf, file);
  return { ...flat, source: { file, sha256: sha256(buf), format, container: flat.container, prefix: flat.prefix } };
}

const shapesOf = (flat: FlatStateDict): Map<string, number[]> => new Map([...flat.tensors].map(([k, t]) => [k, t.shape]));

/**
 * Writes a state_dict into `model` (strict: every key the model needs, no unknown key, same shapes), using the
 * mapping of `archOrFamily`. `label` names the source in errors.
 */
export function importIntoModel(model: tf.LayersModel, mapping: TorchMapping, flat: FlatStateDict, label: string, what: string): void {
  const specs = expectedKeys(model, mapping);
  const problem = describeMismatch(compareKeys(specs, shapesOf(flat), mapping));
  if (problem) throw new InputError(`${label}: does not match ${what}: ${printable(problem, 600)}`);
  try {
    writeStateDict(specs, flat.tensors);
  } catch (e) {
    if (e instanceof FormatError) throw new InputError(`${label}: ${printable(e.message)}`);
    throw e;
  }
}

/** Architecture and class count of a state_dict: given, or recognised from its keys and shapes. */
export function resolveArch(flat: FlatStateDict, label: string, opts: { arch?: string; numClasses?: number }): { arch: string; numClasses: number } {
  const shapes = shapesOf(flat);
  const seen = recogniseArch(shapes);
  let arch: string;
  if (opts.arch !== undefined) arch = parseArch(opts.arch);
  else if ('problem' in seen) throw new InputError(`${label}: ${printable(seen.problem, 300)}`);
  else if (!isModelArch(seen.arch)) {
    throw new InputError(`${label}: holds a ${seen.arch}, which is not in the zoo (${MODEL_ARCHS_HELP})`);
  } else arch = seen.arch;
  let numClasses = opts.numClasses;
  if (numClasses === undefined) {
    // Zoo models name their linear head 'fc' (module path from the mapping); other families register their head
    // last, so the last 2-D weight is the fallback.
    const last2d = [...shapes].filter(([k, s]) => k.endsWith('.weight') && s.length === 2).at(-1)?.[1];
    const head = shapes.get(`${mappingFor(arch).modulePath('fc')}.weight`) ?? last2d;
    numClasses = head?.[0] ?? ('problem' in seen ? undefined : seen.numClasses);
    if (numClasses === undefined) throw new InputError(`${label}: cannot tell the number of classes of this ${arch}`);
  }
  return { arch, numClasses };
}

export interface ImportedModel {
  model: tf.LayersModel;
  arch: string;
  numClasses: number;
  source: WeightSource;
}

/**
 * The architecture with zero weights except its fixed input normalisation (not part of a PyTorch state_dict):
 * the import overwrites everything else, so the seeded initialisation of createModel (5 s for a WRN-34-10) is skipped.
 */
function unInitialisedModel(arch: ModelArch, numClasses: number): tf.LayersModel {
  if (!Number.isInteger(numClasses) || numClasses < 2) throw new InputError(`expected at least 2 classes, got ${numClasses}`);
  const model = archDef(arch).build(numClasses);
  if (model.layers.some((l) => l.name === NORMALIZATION_LAYER)) {
    // Same values as models/init.ts. The architecture's own statistics first (mdistiller's models carry their
    // loader's CIFAR-100 Normalize).
    const { mean, std } = archDef(arch).init.normalization ?? normalizationStats(numClasses);
    setNormalization(model, mean, std);
  }
  return model;
}

/** A PyTorch weight file as a zoo model (architecture and class count recognised unless given). */
export async function loadTorchModel(file: string, opts: { arch?: string; numClasses?: number } = {}): Promise<ImportedModel> {
  const flat = await readStateDictFile(file);
  const { arch, numClasses } = resolveArch(flat, file, opts);
  const model = unInitialisedModel(parseArch(arch), numClasses);
  try {
    importIntoModel(model, mappingFor(arch), flat, file, `${arch} with ${numClasses} classes`);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, arch, numClasses, source: flat.source };
}

/** Export formats by file extension. */
export function exportFormat(file: string): 'safetensors' | 'torch-zip' {
  const ext = extname(file).toLowerCase();
  if (ext === '.safetensors') return 'safetensors';
  if (ext === '.pt' || ext === '.pth') return 'torch-zip';
  throw new InputError(`--to ${file}: unknown extension '${ext}', expected .safetensors, .pt or .pth`);
}

/** The model's state_dict under the official key names of `arch`. */
export function modelStateDict(model: tf.LayersModel, arch: string): OutTensor[] {
  return readStateDict(expectedKeys(model, mappingFor(arch)));
}

/** Serialises a state_dict in the format the file name asks for. */
export function encodeStateDict(tensors: readonly OutTensor[], file: string, metadata: Record<string, string> = {}): Uint8Array {
  if (exportFormat(file) === 'safetensors') return writeSafetensors(tensors, metadata);
  // torch.save names the archive's top directory after the file; any name loads.
  return writeTorchZip(
    tensors,
    basename(file)
      .replace(/\.[^.]*$/, '')
      .replace(/[^A-Za-z0-9_-]/g, '_') || 'archive',
  );
}

/** Exports a model to `file` (.safetensors, .pt, .pth); returns the file's sha256. */
export async function exportModel(model: tf.LayersModel, arch: string, file: string, metadata: Record<string, string> = {}): Promise<string> {
  const bytes = encodeStateDict(modelStateDict(model, arch), file, { arch, ...metadata });
  await writeFileAtomic(file, bytes);
  return sha256(bytes);
}
