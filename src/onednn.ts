/**
 * Whether TensorFlow's oneDNN kernels are safe on this CPU, decided before the native backend loads.
 *
 * On some AMD EPYC (Zen 4, AVX-512) hosts oneDNN's convolution divides by zero and the process dies of SIGFPE
 * (`conv2d(x[1,8,8,256], w[1,1,256,1024])`, every ResNet-50 forward; tensorflow/tensorflow#57749,
 * pytorch/pytorch#177227). A signal cannot be caught in the process that gets it, and the fault depends on the CPU,
 * not on anything we can read, so the test is to run: a child process loads the backend with oneDNN on and runs the
 * known-bad convolutions forward and backward (onednn-probe.ts). If the child dies of a signal, this process runs
 * with TF_ENABLE_ONEDNN_OPTS=0 (TensorFlow's Eigen kernels: what the machine needs to work); otherwise
 * oneDNN stays on (12-32% faster training steps where it works). The outcome is cached per CPU and native binding
 * in ~/.cache/ikl-at, so the probe's few seconds are paid once per machine.
 *
 * Overrides: TF_ENABLE_ONEDNN_OPTS set by the user always wins; IKL_ONEDNN=on|off forces a path without probing.
 * Tests inject the probe's outcome with IKL_ONEDNN_PROBE_SIMULATE=signal (the child kills itself with SIGFPE, so
 * the detection of a real signal death is what runs).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { InputError } from './errors.js';
import { cacheDir } from './files.js';

export interface OneDnnDecision {
  /** oneDNN kernels on (TF_ENABLE_ONEDNN_OPTS=1) or off (=0). */
  onednn: boolean;
  /** Who decided: the user's TF_ENABLE_ONEDNN_OPTS, IKL_ONEDNN, the probe now, or its cached outcome. */
  source: 'TF_ENABLE_ONEDNN_OPTS' | 'IKL_ONEDNN' | 'probe' | 'cache';
  /** One line: why. */
  reason: string;
}

export interface ProbeResult {
  outcome: 'ok' | 'signal' | 'inconclusive';
  /** The signal or exit status, and the TensorFlow version the child saw. */
  detail: string;
}

const require = createRequire(import.meta.url);
const PROBE = new URL('./onednn-probe.js', import.meta.url).pathname;
const FATAL = ['SIGFPE', 'SIGILL', 'SIGSEGV', 'SIGBUS', 'SIGABRT', 'SIGSYS'];

/** Runs the probe in a child process with oneDNN on; `env` reaches the child (IKL_ONEDNN_PROBE_SIMULATE). */
export function runProbe(pkg: string, env: NodeJS.ProcessEnv = process.env): ProbeResult {
  const r = spawnSync(process.execPath, [PROBE, pkg], {
    env: { ...env, TF_ENABLE_ONEDNN_OPTS: '1', TF_CPP_MIN_LOG_LEVEL: '2' },
    encoding: 'utf8',
    timeout: 180_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tfVersion = /tensorflow (\S+)/.exec(r.stdout ?? '')?.[1];
  if (r.signal && FATAL.includes(r.signal)) return { outcome: 'signal', detail: `died of ${r.signal}` };
  if (r.status === 0 && tfVersion) return { outcome: 'ok', detail: `convolutions ran (TensorFlow ${tfVersion})` };
  const why = r.error ? r.error.message : r.signal ? `killed by ${r.signal}` : `exit ${r.status}: ${(r.stderr ?? '').trim().split('\n').at(-1) ?? ''}`;
  return { outcome: 'inconclusive', detail: why.slice(0, 200) };
}

/** What the probe's outcome depends on: the CPU (model, feature flags) and the native binding (version, build). */
export function probeKey(pkg: string): string {
  const h = createHash('sha256');
  h.update(`${process.platform}-${process.arch}\n${cpus()[0]?.model ?? '?'}\n`);
  try {
    h.update(/^flags\s*:.*$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[0] ?? '');
  } catch {
    // not Linux: the model name stands for the CPU
  }
  try {
    const root = dirname(require.resolve(`${pkg}/package.json`));
    h.update(readFileSync(join(root, 'package.json')));
    for (const d of readdirSync(join(root, 'lib'))) {
      for (const f of readdirSync(join(root, 'lib', d)).sort()) {
        const s = statSync(join(root, 'lib', d, f));
        h.update(`${d}/${f} ${s.size} ${s.mtimeMs}\n`);
      }
    }
  } catch {
    h.update('no binding');
  }
  return h.digest('hex').slice(0, 16);
}

export interface DecideOptions {
  /** The backend package the process will load. */
  pkg: string;
  env?: NodeJS.ProcessEnv;
  /** The probe (default runProbe). */
  probe?: (pkg: string, env: NodeJS.ProcessEnv) => ProbeResult;
}

/** Decides oneDNN on or off for this process (see the header); never throws for a cache that cannot be written. */
export function decideOneDnn({ pkg, env = process.env, probe = runProbe }: DecideOptions): OneDnnDecision {
  const user = env.TF_ENABLE_ONEDNN_OPTS;
  if (user !== undefined) {
    return { onednn: user !== '0', source: 'TF_ENABLE_ONEDNN_OPTS', reason: `TF_ENABLE_ONEDNN_OPTS=${user} set by the user` };
  }
  const force = env.IKL_ONEDNN ?? 'auto';
  if (force === 'on' || force === 'off') return { onednn: force === 'on', source: 'IKL_ONEDNN', reason: `IKL_ONEDNN=${force}` };
  if (force !== 'auto') throw new InputError(`IKL_ONEDNN: expected on, off or auto, got '${force}'`);

  const file = join(cacheDir(env), `onednn-probe-${probeKey(pkg)}.json`);
  try {
    const cached = JSON.parse(readFileSync(file, 'utf8')) as ProbeResult;
    if (cached.outcome === 'ok' || cached.outcome === 'signal') return fromProbe(cached, 'cache', file);
  } catch {
    // no cache yet, or unreadable: probe
  }
  const result = probe(pkg, env);
  if (result.outcome !== 'inconclusive') {
    try {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(`${file}.${process.pid}.tmp`, JSON.stringify(result));
      renameSync(`${file}.${process.pid}.tmp`, file);
    } catch {
      // a read-only home: probe again next time
    }
  }
  return fromProbe(result, 'probe', file);
}

function fromProbe(r: ProbeResult, source: 'probe' | 'cache', file: string): OneDnnDecision {
  const from = source === 'cache' ? ` (cached in ${file}; delete it to probe again)` : '';
  if (r.outcome === 'signal') {
    return {
      onednn: false,
      source,
      reason: `oneDNN's convolution probe ${r.detail} on this CPU (${cpus()[0]?.model ?? 'unknown'}): oneDNN off, TF_ENABLE_ONEDNN_OPTS=0${from}`,
    };
  }
  if (r.outcome === 'ok') return { onednn: true, source, reason: `oneDNN's convolution probe passed: ${r.detail}${from}` };
  return { onednn: true, source, reason: `oneDNN's convolution probe was inconclusive (${r.detail}): oneDNN left on` };
}
