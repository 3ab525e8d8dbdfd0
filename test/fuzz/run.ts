/**
 * The fuzzing loop: mutants of the seeds (mutate.ts) through the watchdog (watchdog.ts), outcomes counted by
 * class. Deterministic for a seed and a number of inputs; a time limit only decides where a long run stops.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HOSTILE } from './hostile.js';
import { tinySafetensors, tinyZip } from './build.js';
import { mutate, mutateBytes, rngOf } from './mutate.js';
import { acceptable, OUTCOMES, Watchdog, type Outcome, type Result } from './watchdog.js';

/** Largest input tried (the hostile files reach 18 MB; the budgets scale with the file size). */
const MAX_INPUT = 32 * 2 ** 20;

export const FIXTURE_DIR = new URL('../../../test/fixtures/interop/', import.meta.url).pathname;

/** The seeds: every committed weight fixture (zip, legacy, safetensors), two tiny files, and the small hostile files. */
export function seeds(): { name: string; bytes: Uint8Array }[] {
  const files = readdirSync(FIXTURE_DIR)
    .filter((f) => /\.(pt|safetensors)$/.test(f))
    .sort()
    .map((f) => ({ name: f, bytes: new Uint8Array(readFileSync(join(FIXTURE_DIR, f))) }));
  const hostile = HOSTILE.map((h) => ({ name: `hostile: ${h.name}`, bytes: h.bytes() })).filter((h) => h.bytes.length <= 256 * 1024);
  return [...files, { name: 'tiny.pt', bytes: tinyZip() }, { name: 'tiny.safetensors', bytes: tinySafetensors() }, ...hostile];
}

export interface Finding {
  index: number;
  seed: string;
  result: Result;
  bytes: Uint8Array;
}

export interface FuzzReport {
  inputs: number;
  counts: Record<Outcome, number>;
  findings: Finding[];
  peakRss: number;
  seconds: number;
}

export interface FuzzOptions {
  seed: number;
  /** Stop after this many inputs ... */
  inputs?: number;
  /** ... or after this many seconds, whichever comes first. */
  seconds?: number;
  timeoutMs?: number;
  maxRssBytes?: number;
  /** Called on every input that is neither refused cleanly nor loaded. */
  onFinding?: (f: Finding) => void;
  onProgress?: (r: FuzzReport) => void;
}

export async function fuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const r = rngOf(opts.seed);
  const pool = seeds();
  const dog = new Watchdog({ timeoutMs: opts.timeoutMs, maxRssBytes: opts.maxRssBytes });
  const counts = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<Outcome, number>;
  const report: FuzzReport = { inputs: 0, counts, findings: [], peakRss: 0, seconds: 0 };
  const t0 = Date.now();
  const deadline = opts.seconds === undefined ? Infinity : t0 + opts.seconds * 1000;
  const max = opts.inputs ?? Infinity;
  let lastProgress = t0;
  try {
    while (report.inputs < max && Date.now() < deadline) {
      const s = pool[Math.floor(r() * pool.length)]!;
      let bytes: Uint8Array;
      try {
        bytes = mutate(r, s.bytes);
      } catch {
        bytes = mutateBytes(r, s.bytes); // a mutator that trips on an odd mutant: plain bytes instead
      }
      if (bytes.length > MAX_INPUT) bytes = mutateBytes(r, s.bytes); // mutants of mutants may grow without end
      const result = await dog.run(bytes);
      counts[result.outcome]++;
      report.peakRss = Math.max(report.peakRss, result.rss);
      if (!acceptable(result.outcome)) {
        const f = { index: report.inputs, seed: s.name, result, bytes };
        report.findings.push(f);
        opts.onFinding?.(f);
      }
      report.inputs++;
      if (opts.onProgress && Date.now() - lastProgress > 10_000) {
        lastProgress = Date.now();
        report.seconds = (Date.now() - t0) / 1000;
        opts.onProgress(report);
      }
    }
  } finally {
    dog.stop();
  }
  report.seconds = (Date.now() - t0) / 1000;
  return report;
}
