/**
 * `npm run fuzz -- [--seconds 3600] [--inputs N] [--seed 1] [--out fuzz-findings]`: the long fuzzing run by hand.
 * Prints outcome counts as it goes; writes every input that was not cleanly refused or loaded to --out, and exits
 * 1 if there was any.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fuzz, type FuzzReport } from './run.js';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const seconds = Number(flag('seconds') ?? 60);
const inputs = flag('inputs') === undefined ? undefined : Number(flag('inputs'));
const seed = Number(flag('seed') ?? 1);
const out = flag('out') ?? 'fuzz-findings';
const line = (r: FuzzReport): string =>
  `${r.inputs} inputs in ${r.seconds.toFixed(0)} s: ${Object.entries(r.counts)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')}; child peak RSS ${Math.round(r.peakRss / 2 ** 20)} MiB`;

const report = await fuzz({
  seed,
  seconds,
  inputs,
  onProgress: (r) => console.error(line(r)),
  onFinding: (f) => {
    mkdirSync(out, { recursive: true });
    const file = join(out, `seed${seed}-${f.index}-${f.result.outcome}.bin`);
    writeFileSync(file, f.bytes);
    console.error(`FINDING ${f.result.outcome} (from ${f.seed}): ${f.result.detail} -> ${file}`);
  },
});
console.log(line(report));
process.exit(report.findings.length > 0 ? 1 : 0);
