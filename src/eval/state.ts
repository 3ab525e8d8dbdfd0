/**
 * Resumable evaluation state (`--state <file>`): per-example clean correctness, the stage that broke each
 * example, and which stages of which batches are finished. Written atomically, so a run killed at any moment
 * leaves either the previous or the new state on disk, never half a file.
 */
import { readFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { EMPTY_VALIDITY, type ValidityLine } from '../attacks/validity.js';
import type { EvalOptions, Slice, Validity } from './types.js';
import { validityFromJson, validityToJson } from './validity.js';

export const STATE_VERSION = 1;

export interface BatchState {
  /** Stages finished for this batch (0 = only the clean pass, if `cleanDone`). */
  stagesDone: number;
  cleanTime: number;
  stageTimes: number[];
  validity: ValidityLine;
}

export interface EvalState {
  version: number;
  /** The options the state was made with; a resume with other options would mix two different evaluations. */
  options: EvalOptions;
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

export function newState(options: EvalOptions, stages: string[], slice: Slice): EvalState {
  const n = slice.end - slice.start;
  return {
    version: STATE_VERSION,
    options,
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
  await writeFileAtomic(file, `${JSON.stringify({ ...state, batches })}\n`);
}

/** Reads a state file; undefined if it does not exist. A corrupt or foreign file is an InputError. */
export function loadState(file: string): EvalState | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new InputError(`--state ${file}: cannot read (${(e as Error).message})`);
  }
  let s: EvalState;
  try {
    s = JSON.parse(text) as EvalState;
  } catch {
    throw new InputError(`--state ${file}: not a JSON ikl-eval state file (delete it to start over)`);
  }
  if (s === null || typeof s !== 'object' || s.version !== STATE_VERSION || !Array.isArray(s.clean) || !Array.isArray(s.brokenAt) || typeof s.batches !== 'object') {
    throw new InputError(`--state ${file}: not an ikl-eval state file of version ${STATE_VERSION} (delete it to start over)`);
  }
  for (const b of Object.values(s.batches)) b.validity = b.validity ? validityFromJson(b.validity as unknown as Validity) : { ...EMPTY_VALIDITY };
  return s;
}

/**
 * Refuses to resume a state made with other options: names the first option that differs.
 * Deliberately strict (the checkpoint path and data dir count too): a silent mix would be a wrong number.
 */
export function assertSameOptions(file: string, saved: EvalOptions, wanted: EvalOptions): void {
  const keys = new Set([...Object.keys(saved), ...Object.keys(wanted)]) as Set<keyof EvalOptions>;
  for (const k of keys) {
    const a = JSON.stringify(saved[k] ?? null);
    const b = JSON.stringify(wanted[k] ?? null);
    if (a !== b) {
      throw new InputError(`--state ${file}: made with ${k}=${a}, this run has ${k}=${b}; use another --state file or the same options`);
    }
  }
}
