/** What the evaluation kill tests read: the in-stage part of a `--state` file, and reports without their times. */
import { readFileSync } from 'node:fs';
import type { EvalReport } from '../../src/eval/types.js';

/** A report with every time set to null: a resumed run must equal the uninterrupted one in everything else. */
export function timeless(r: EvalReport): unknown {
  return { ...r, created_at: null, time_s: null, stages: r.stages.map((s) => ({ ...s, time_s: null })) };
}

/** The in-stage checkpoint of batch 0 in a state file: its stage and the attack units saved. */
export interface Partial {
  stage: number;
  attack: { units: number } | null;
}

/** Batch 0's record in the state file, or undefined before the first write. */
export function batchZero(stateFile: string): { stagesDone: number; partial?: Partial } | undefined {
  try {
    return (JSON.parse(readFileSync(stateFile, 'utf8')) as { batches: Record<string, { stagesDone: number; partial?: Partial }> }).batches['0'];
  } catch {
    return undefined; // never half-written (atomic rename), but read defensively
  }
}

export function partialOf(stateFile: string): Partial | undefined {
  return batchZero(stateFile)?.partial;
}
