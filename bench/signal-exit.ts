/**
 * Seconds from SIGINT to the exit of `ikl-train` (issue 11): starts the CLI on a config, sends SIGINT `--after`
 * seconds after training starts, and prints the time to the exit, the exit code and where last/ stands.
 *   node dist/bench/signal-exit.js --config configs/quickstart.yaml [--after 5] [--set model.arch=preact-resnet-18 ...]
 * The step time of the same setting comes from bench/train-step.ts.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const at = args.indexOf('--after');
const after = at >= 0 ? Number(args.splice(at, 2)[1]) : 5;
const bin = join(fileURLToPath(new URL('../../', import.meta.url)), 'bin', 'ikl-train.js');
const runDir = mkdtempSync(join(tmpdir(), 'ikl-signal-bench-'));

const child = spawn(process.execPath, [bin, ...args, '--run-dir', join(runDir, 'run'), '--log-format', 'json', '--no-progress'], {
  stdio: ['ignore', 'ignore', 'pipe'],
});
let stderr = '';
let sentAt = 0;
child.stderr.on('data', (d: Buffer) => {
  stderr += d.toString();
  if (sentAt === 0 && stderr.includes('"msg":"training starts"')) {
    sentAt = -1;
    setTimeout(() => {
      sentAt = performance.now();
      child.kill('SIGINT');
    }, after * 1000);
  }
});
const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
if (sentAt <= 0) {
  console.log(`exited ${code} before the signal was sent:\n${stderr}`);
  process.exit(1);
}
const seconds = (performance.now() - sentAt) / 1000;
const meta = JSON.parse(readFileSync(join(runDir, 'run', 'last', 'checkpoint.json'), 'utf8')) as { step: number; state: { position: unknown } };
console.log(
  `SIGINT ${after} s into training -> exit ${code} after ${seconds.toFixed(2)} s; last/ at step ${meta.step}, position ${JSON.stringify(meta.state.position)}`,
);
rmSync(runDir, { recursive: true, force: true });
