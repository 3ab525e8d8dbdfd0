/**
 * `ikl-launch`: runs one command as N tasks on this machine, like torchrun.
 *
 *   ikl-launch --nproc 4 -- ikl-train --config configs/cifar10-ikl-at.yaml
 *   ikl-launch --nproc 4 -- ikl-eval --checkpoint runs/x/best --attack autoattack
 *
 * ikl-train: one data-parallel run. Each task gets TF_CONFIG (free ports on 127.0.0.1, task index = rank), its GPU
 * (CUDA_VISIBLE_DEVICES: the rank-th of the visible ones), and its output prefixed by "[rank] ". When a task fails,
 * the others are stopped; SIGINT/SIGTERM is forwarded once to every task (each finishes the step they agree on,
 * task 0 writes last/, all exit 130/143); a second one kills them.
 * ikl-eval: the existing shards (`--shard r/N`, a state file each under --out), then `ikl-eval merge`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createServer, type Server } from 'node:net';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { EXIT, InputError } from '../errors.js';
import { runProgram } from './common.js';

const BIN_DIR = fileURLToPath(new URL('../../../bin/', import.meta.url));
const OUR_BINS = ['ikl-train', 'ikl-eval', 'ikl-export', 'ikl-doctor'];

interface LaunchFlags {
  nproc: string;
  timeout?: string;
  threads?: string;
  out: string;
}

const EXAMPLES = `
Examples:
  $ ikl-launch --nproc 4 -- ikl-train --config configs/cifar10-ikl-at.yaml     # one run on 4 GPUs (batch split 4 ways)
  $ ikl-launch --nproc 4 -- ikl-train --resume runs/cifar10-ikl-at              # every task resumes from last/
  $ ikl-launch --nproc 2 --threads 1 -- ikl-train --config configs/quickstart.yaml   # CPU: 2 tasks of 1 thread
  $ ikl-launch --nproc 4 --out eval-x -- ikl-eval --checkpoint runs/x/best --attack autoattack   # 4 shards, merged

Failures: a task that exits non-zero stops the others; a task that hangs or dies makes the others' all-reduce
fail after --timeout seconds (default 300). Ctrl-C: every task stops after the same step, last/ is kept, exit 130.`;

/** Ports the OS reports free on 127.0.0.1 (closed again just before the tasks bind them). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Server>((resolve, reject) => {
          const s = createServer();
          s.on('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** The environment of task `rank` of `n` (exported for the tests). */
export function taskEnv(base: NodeJS.ProcessEnv, rank: number, workers: string[], opts: { timeout?: number; threads?: number }): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base, TF_CONFIG: JSON.stringify({ cluster: { worker: workers }, task: { type: 'worker', index: rank } }) };
  // One GPU per task: the rank-th of those visible to the launcher (all of the machine's when unset).
  const visible = base.CUDA_VISIBLE_DEVICES;
  if (visible === undefined) env.CUDA_VISIBLE_DEVICES = String(rank);
  else if (visible !== '' && visible !== '-1') {
    const ids = visible.split(',');
    env.CUDA_VISIBLE_DEVICES = ids[rank % ids.length];
  }
  if (opts.timeout !== undefined) env.IKL_COLLECTIVE_TIMEOUT = String(opts.timeout);
  if (opts.threads !== undefined) {
    env.TF_NUM_INTRAOP_THREADS = String(opts.threads);
    env.TF_NUM_INTEROP_THREADS ??= '1';
  }
  return env;
}

/** Copies a stream to `out` line by line with a prefix. */
function prefixLines(stream: NodeJS.ReadableStream, out: NodeJS.WritableStream, prefix: string): void {
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop()!;
    for (const l of lines) out.write(`${prefix}${l}\n`);
  });
  stream.on('end', () => {
    if (rest) out.write(`${prefix}${rest}\n`);
  });
}

/** The executable and arguments of `command`: our bins run with this node; anything else as given. */
function resolveCommand(command: string[]): [string, string[]] {
  const [name, ...args] = command as [string, ...string[]];
  if (OUR_BINS.includes(name)) return [process.execPath, [join(BIN_DIR, `${name}.js`), ...args]];
  return [name, args];
}

interface Task {
  rank: number;
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startTask(rank: number, command: string[], env: NodeJS.ProcessEnv, stdout: 'prefix' | string): Task {
  const [file, args] = resolveCommand(command);
  // Own process group: a Ctrl-C in the terminal reaches the launcher only, which forwards it once.
  const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  if (stdout === 'prefix') prefixLines(child.stdout!, process.stdout, `[${rank}] `);
  else {
    let data = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => (data += d));
    child.stdout!.on('end', () => writeFileSync(stdout, data));
  }
  prefixLines(child.stderr!, process.stderr, `[${rank}] `);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('error', (e) => {
      process.stderr.write(`ikl-launch: task ${rank}: cannot start ${file}: ${e.message}\n`);
      resolve({ code: 127, signal: null });
    });
    // 'close': the process has exited and its output streams are drained (a shard's report is complete).
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  return { rank, child, exited };
}

const alive = (t: Task): boolean => t.child.exitCode === null && t.child.signalCode === null;

/**
 * The launcher's signal handling, in one place: the first SIGINT/SIGTERM is forwarded to every task, a second
 * one kills them. Returns the uninstall function and what was received.
 */
function forwardSignals(tasks: Task[]): { received: () => NodeJS.Signals | undefined; uninstall: () => void } {
  let received: NodeJS.Signals | undefined;
  const handler = (sig: NodeJS.Signals): void => {
    if (received) {
      process.stderr.write(`ikl-launch: second ${sig}: killing every task\n`);
      for (const t of tasks) if (alive(t)) t.child.kill('SIGKILL');
      return;
    }
    received = sig;
    process.stderr.write(`ikl-launch: ${sig}: forwarded to every task (they stop after the same step; again to kill them)\n`);
    for (const t of tasks) if (alive(t)) t.child.kill(sig);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    received: () => received,
    uninstall: () => {
      process.removeListener('SIGINT', handler);
      process.removeListener('SIGTERM', handler);
    },
  };
}

/** Seconds the other tasks get to stop after one failed, before they are killed. */
const STOP_GRACE_MS = 10_000;

/**
 * Runs the tasks; when one fails the others get SIGTERM, then SIGKILL after a grace period. Resolves with the exit
 * code of the launch: 0, the first failure's code, or 130/143 after a forwarded signal.
 */
async function runTasks(tasks: Task[]): Promise<number> {
  const signals = forwardSignals(tasks);
  let failure: { rank: number; code: number } | undefined;
  let killer: NodeJS.Timeout | undefined;
  try {
    await Promise.all(
      tasks.map(async (t) => {
        const { code, signal } = await t.exited;
        const rc = code ?? (signal === 'SIGINT' ? EXIT.sigint : signal === 'SIGTERM' ? EXIT.sigterm : 137);
        if (rc === 0 || failure || signals.received()) return;
        failure = { rank: t.rank, code: rc };
        process.stderr.write(`ikl-launch: task ${t.rank} exited with ${code ?? signal}; stopping the other tasks\n`);
        for (const o of tasks) if (alive(o)) o.child.kill('SIGTERM');
        killer = setTimeout(() => tasks.forEach((o) => alive(o) && o.child.kill('SIGKILL')), STOP_GRACE_MS);
        killer.unref();
      }),
    );
  } finally {
    if (killer) clearTimeout(killer);
    signals.uninstall();
    for (const t of tasks) if (alive(t)) t.child.kill('SIGKILL');
  }
  const sig = signals.received();
  if (sig) return sig === 'SIGTERM' ? EXIT.sigterm : EXIT.sigint;
  return failure ? failure.code : EXIT.ok;
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InputError(`${flag}: expected a positive integer, got ${value}`);
  return n;
}

async function launchAction(flags: LaunchFlags, command: string[]): Promise<number> {
  const n = positiveInt(flags.nproc, '--nproc');
  const timeout = flags.timeout === undefined ? undefined : Number(flags.timeout);
  if (timeout !== undefined && !(timeout > 0)) throw new InputError(`--timeout: expected a positive number of seconds, got ${flags.timeout}`);
  const threads = flags.threads === undefined ? undefined : positiveInt(flags.threads, '--threads');
  if (command.length === 0) throw new InputError('expected a command after --, e.g. ikl-launch --nproc 2 -- ikl-train --config configs/quickstart.yaml');
  if (threads === undefined && n > 1 && process.env.CUDA_VISIBLE_DEVICES === '') {
    process.stderr.write(`ikl-launch: ${n} CPU tasks share ${availableParallelism()} cores; consider --threads\n`);
  }
  if (command[0] === 'ikl-eval') return launchEval(n, command, flags.out, threads);
  for (const a of command.slice(1)) {
    if (a === '--shard' || a.startsWith('--shard=')) throw new InputError(`${a}: ikl-launch sets the tasks' places itself`);
  }
  const workers = (await freePorts(n)).map((p) => `127.0.0.1:${p}`);
  const tasks = Array.from({ length: n }, (_, rank) => startTask(rank, command, taskEnv(process.env, rank, workers, { timeout, threads }), 'prefix'));
  return runTasks(tasks);
}

/** ikl-eval over the launcher: shard r of N per task, each with its state file, then the merged report on stdout. */
async function launchEval(n: number, command: string[], out: string, threads?: number): Promise<number> {
  for (const a of command.slice(1)) {
    if (['--shard', '--state'].some((f) => a === f || a.startsWith(`${f}=`))) throw new InputError(`${a}: ikl-launch sets it per shard`);
  }
  mkdirSync(out, { recursive: true });
  const reports = Array.from({ length: n }, (_, r) => join(out, `shard${r}.json`));
  const tasks = reports.map((report, r) => {
    const args = [...command, '--shard', `${r}/${n}`, '--state', join(out, `shard${r}.state.json`), '--no-progress'];
    const env: NodeJS.ProcessEnv = { ...process.env, ...(threads !== undefined ? { TF_NUM_INTRAOP_THREADS: String(threads) } : {}) };
    const visible = process.env.CUDA_VISIBLE_DEVICES;
    if (visible === undefined) env.CUDA_VISIBLE_DEVICES = String(r);
    else if (visible !== '' && visible !== '-1') env.CUDA_VISIBLE_DEVICES = visible.split(',')[r % visible.split(',').length];
    return startTask(r, args, env, `${report}.tmp`);
  });
  const code = await runTasks(tasks);
  if (code !== EXIT.ok) return code;
  reports.forEach((r) => renameSync(`${r}.tmp`, r));
  const merge = startTask(0, ['ikl-eval', 'merge', ...reports], process.env, join(out, 'report.json'));
  const { code: mergeCode } = await merge.exited;
  if (mergeCode === 0) process.stdout.write(readFileSync(join(out, 'report.json'), 'utf8'));
  return mergeCode ?? EXIT.failure;
}

export function buildProgram(run: (body: () => Promise<number>) => void): Command {
  return new Command('ikl-launch')
    .description(
      'Runs ikl-train as N data-parallel tasks on this machine (one per GPU; TensorFlow collective ops over 127.0.0.1), or ikl-eval as N shards merged.',
    )
    .requiredOption('--nproc <n>', 'number of tasks (one per GPU)')
    .option('--timeout <seconds>', 'seconds an all-reduce waits for the other tasks before failing (default 300)')
    .option('--threads <n>', 'TensorFlow intra-op threads per task (CPU runs: cores / tasks)')
    .option('--out <dir>', 'ikl-eval: where the shard reports and states go', 'eval-shards')
    .argument('<command...>', 'ikl-train or ikl-eval (or another program) and its flags, after --')
    .addHelpText('after', EXAMPLES)
    .passThroughOptions()
    .action((command: string[], flags: LaunchFlags) => run(() => launchAction(flags, command)));
}

/** Entry point of bin/ikl-launch.js. */
export async function main(argv: string[] = process.argv): Promise<void> {
  await runProgram('ikl-launch', buildProgram, argv);
}
