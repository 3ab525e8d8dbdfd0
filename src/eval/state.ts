/**
 * Resumable evaluation state (`--state <file>`): per-example clean correctness, the stage that broke each
 * example, and which stages of which batches are finished. Written atomically, so a run killed at any moment
 * leaves either the previous or the new state on disk, never half a file.
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { shortId } from '../checkpoint/identity.js';
import { fileError, InputError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { EMPTY_VALIDITY, type ValidityLine } from '../attacks/validity.js';
import type { AttackStateJson } from '../attacks/progress.js';
import type { EvalOptions, Slice, Validity } from './types.js';
import { validityFromJson, validityToJson } from './validity.js';

/**
 * 2 added `weightsSha256`. Version-1 states are still read, but never resumed: they name their model by path
 * only, and the weights behind a path (wa/, best/, last/) move while training continues.
 */
export const STATE_VERSION = 2;
const READABLE_VERSIONS = [1, 2];

export interface BatchState {
  /** Stages finished for this batch (0 = only the clean pass, if `cleanDone`). */
  stagesDone: number;
  cleanTime: number;
  stageTimes: number[];
  validity: ValidityLine;
  /**
   * Stage `stagesDone` in progress at the last save: the sequencer's checkpoint (src/attacks/autoattack.ts
   * StageCheckpoint) as JSON, so a resumed run continues that stage after its last saved attack unit.
   */
  partial?: PartialStageJson;
}

/** A StageCheckpoint in the state file (validity in its JSON fields, the attack state in base64). */
export interface PartialStageJson {
  stage: number;
  chunk: number;
  fooledRows: number[];
  validity: Validity | null;
  attack: AttackStateJson | null;
}

export interface EvalState {
  version: number;
  /** The options the state was made with; a resume with other options would mix two different evaluations. */
  options: EvalOptions;
  /** Identity of the evaluated model (sha256 over its weights); null in a version-1 state. */
  weightsSha256: string | null;
  stages: string[];
  slice: Slice;
  /** Per example of the slice: 1 correct on clean input, 0 wrong, -1 not evaluated yet. */
  clean: number[];
  /** Per example: index of the first stage whose attack succeeded, -1 if none (yet). */
  brokenAt: number[];
  /** Keyed by the global batch index. A batch is complete when stagesDone === stages.length. */
  batches: Record<string, BatchState>;
  sanityWarnings: string[] | null;
}

export function newState(options: EvalOptions, stages: string[], slice: Slice, weightsSha256: string): EvalState {
  const n = slice.end - slice.start;
  return {
    version: STATE_VERSION,
    options,
    weightsSha256,
    stages,
    slice,
    clean: new Array<number>(n).fill(-1),
    brokenAt: new Array<number>(n).fill(-1),
    batches: {},
    sanityWarnings: null,
  };
}

export async function saveState(file: string, state: EvalState): Promise<void> {
  const batches: Record<string, unknown> = {};
  for (const [k, b] of Object.entries(state.batches)) batches[k] = { ...b, validity: validityToJson(b.validity) };
  try {
    await writeFileAtomic(file, `${JSON.stringify({ ...state, batches })}\n`);
  } catch (e) {
    throw e instanceof InputError ? new InputError(`--state ${e.message}`) : e;
  }
}

/**
 * Checks, before any work, that `--state file` can be written: its folder exists and is writable, and the file
 * itself, if present, is a file. Errors name the file as given.
 */
export function assertStateWritable(file: string): void {
  const dir = dirname(file);
  try {
    if (!statSync(dir).isDirectory()) throw new InputError(`--state ${file}: ${dir} is not a folder`);
    accessSync(dir, constants.W_OK);
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new InputError(`--state ${file}: the folder ${dir} does not exist (create it first)`);
    throw fileError(`--state ${file}`, e, `write in ${dir}`);
  }
  let st;
  try {
    st = statSync(file);
  } catch {
    return; // not there yet: created by the first save
  }
  if (!st.isFile()) throw new InputError(`--state ${file}: exists and is not a file`);
}

/** Reads a state file; undefined if it does not exist. A corrupt or foreign file is an InputError. */
export function loadState(file: string): EvalState | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fileError(`--state ${file}`, e, 'read');
  }
  let s: EvalState;
  try {
    s = JSON.parse(text) as EvalState;
  } catch {
    throw new InputError(`--state ${file}: not a JSON ikl-eval state file (delete it to start over)`);
  }
  if (
    s === null ||
    typeof s !== 'object' ||
    !READABLE_VERSIONS.includes(s.version) ||
    !Array.isArray(s.clean) ||
    !Array.isArray(s.brokenAt) ||
    typeof s.batches !== 'object'
  ) {
    throw new InputError(`--state ${file}: not an ikl-eval state file of version ${READABLE_VERSIONS.join(' or ')} (delete it to start over)`);
  }
  if (typeof s.weightsSha256 !== 'string') s.weightsSha256 = null;
  for (const b of Object.values(s.batches)) b.validity = b.validity ? validityFromJson(b.validity as unknown as Validity) : { ...EMPTY_VALIDITY };
  return s;
}

/**
 * Refuses to resume a state made with other options: names the first option that differs. The checkpoint is
 * compared by its weights (assertSameWeights), not its path; the data dir by its absolute path.
 */
export function assertSameOptions(file: string, saved: EvalOptions, wanted: EvalOptions): void {
  const keys = new Set([...Object.keys(saved), ...Object.keys(wanted)]) as Set<keyof EvalOptions>;
  keys.delete('checkpoint');
  for (const k of keys) {
    const norm = (o: EvalOptions): unknown => (k === 'dataDir' && typeof o.dataDir === 'string' ? resolve(o.dataDir) : o[k]);
    const a = JSON.stringify(norm(saved) ?? null);
    const b = JSON.stringify(norm(wanted) ?? null);
    if (a !== b) {
      throw new InputError(`--state ${file}: made with ${k}=${a}, this run has ${k}=${b}; use another --state file or the same options`);
    }
  }
}

/**
 * Refuses to resume a state made from other weights, naming both hashes and paths. A version-1 state (no hash)
 * is refused too: whether the weights behind its path are still the same cannot be checked.
 */
export function assertSameWeights(file: string, state: EvalState, wanted: EvalOptions, weightsSha256: string): void {
  if (state.weightsSha256 === null) {
    throw new InputError(
      `--state ${file}: written by an older ikl-eval that did not record the weights' sha256, so it cannot show that it was made from ` +
        `the weights now at ${wanted.checkpoint} (sha256 ${shortId(weightsSha256)}); delete it or use another --state file to start over`,
    );
  }
  if (state.weightsSha256 !== weightsSha256) {
    throw new InputError(
      `--state ${file}: made from the weights of ${state.options.checkpoint} (sha256 ${shortId(state.weightsSha256)}), but --checkpoint ` +
        `${wanted.checkpoint} holds other weights (sha256 ${shortId(weightsSha256)}); wa/, best/ and last/ move on while training continues: ` +
        'use another --state file, or the checkpoint the state was made from',
    );
  }
}

/** Every check before resuming `state` (options, weights, stages); the state then names the path used now. */
export function assertResumable(file: string, state: EvalState, wanted: EvalOptions, weightsSha256: string, stages: string[]): void {
  assertSameOptions(file, state.options, wanted);
  assertSameWeights(file, state, wanted, weightsSha256);
  if (JSON.stringify(state.stages) !== JSON.stringify(stages)) {
    throw new InputError(`--state ${file}: made with stages ${state.stages.join(',')}, this run has ${stages.join(',')}; use another --state file`);
  }
  // The same weights and data reached by another path (relative/absolute, a copy): report the path of this run.
  state.options = { ...state.options, checkpoint: wanted.checkpoint, dataDir: wanted.dataDir };
  state.version = STATE_VERSION;
}
