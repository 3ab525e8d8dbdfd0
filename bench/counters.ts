/**
 * Counts what tfjs pays for per call: kernel dispatches (every `runKernel` and custom-gradient op, nested ones
 * included, i.e. each time tfjs' engine runs a kernel) and host syncs (`dataSync`/`data`/`arraySync` reads).
 * Installed once by wrapping the engine's two entry points; `counts()` reads the running totals.
 */
import * as tf from '@tensorflow/tfjs';

export interface Counts {
  kernels: number;
  syncs: number;
}

const totals: Counts = { kernels: 0, syncs: 0 };
let installed = false;

interface EngineHooks {
  runKernelFunc: (...args: unknown[]) => unknown;
  readSync: (...args: unknown[]) => unknown;
  read: (...args: unknown[]) => unknown;
}

export function installCounters(): void {
  if (installed) return;
  installed = true;
  const engine = tf.engine() as unknown as EngineHooks;
  const wrap = (name: keyof EngineHooks, field: keyof Counts): void => {
    const orig = engine[name].bind(engine);
    engine[name] = (...args: unknown[]) => {
      totals[field]++;
      return orig(...args);
    };
  };
  wrap('runKernelFunc', 'kernels');
  wrap('readSync', 'syncs');
  wrap('read', 'syncs');
}

export function counts(): Counts {
  return { ...totals };
}

/** Kernels and syncs of one call of fn (counters must be installed). */
export function countOf<T>(fn: () => T): { result: T } & Counts {
  const a = counts();
  const result = fn();
  const b = counts();
  return { result, kernels: b.kernels - a.kernels, syncs: b.syncs - a.syncs };
}

/** Peak resident set size of this process so far, in GB. */
export const peakRssGb = (): number => process.resourceUsage().maxRSS / 1e6;
