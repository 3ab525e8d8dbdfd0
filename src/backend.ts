/**
 * The one module that decides and loads the TensorFlow.js backend. Library code uses `@tensorflow/tfjs`
 * APIs only and never imports a backend package itself.
 *
 * auto: `@tensorflow/tfjs-node-gpu` if it loads and sees a GPU, else `@tensorflow/tfjs-node`, else the
 * pure-JS `cpu` backend (with a loud warning: it is hundreds of times slower).
 */
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InputError } from './errors.js';
import { oneOf } from './input.js';
import { decideOneDnn, type OneDnnDecision } from './onednn.js';

import { BACKEND_CHOICES, type BackendChoice } from './choices.js';
export { BACKEND_CHOICES, type BackendChoice };

export interface BackendInfo {
  /** tfjs backend name: 'tensorflow' (native binding) or 'cpu' (pure JS). */
  name: 'tensorflow' | 'cpu';
  /** npm package providing it. */
  package: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node' | '@tensorflow/tfjs';
  /** TensorFlow C library version for the native backend, tfjs version for cpu. */
  tfVersion: string;
  gpu: boolean;
  devices: string[];
  warnings: string[];
  /** Native backend: oneDNN on or off, and why (onednn.ts). */
  oneDnn?: OneDnnDecision;
}

export const CPU_SLOWNESS_WARNING =
  'Using the pure-JS cpu backend: training real models will be impractically slow (measured about 640x ' +
  'slower than PyTorch on a small conv net). Run `npm run setup:native` to build the native TensorFlow backend.';

const require = createRequire(import.meta.url);
let current: BackendInfo | undefined;

export function parseBackendChoice(value: string, source = '--backend'): BackendChoice {
  return oneOf(BACKEND_CHOICES, value, source);
}

let oneDnn: OneDnnDecision | undefined;

/** Defaults that make the native backend fast and quiet; a value the user set always wins. */
function setNativeEnvDefaults(want: BackendChoice): void {
  // oneDNN kernels made training steps 12-32% faster on the CPUs we measured, but kill the process on some
  // AVX-512 CPUs: onednn.ts decides (before TensorFlow loads) from a probe in a child process, cached per machine.
  const pkg = want !== 'tensorflow' && resolvable('@tensorflow/tfjs-node-gpu') ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  if (resolvable(pkg)) oneDnn = decideOneDnn({ pkg });
  process.env.TF_ENABLE_ONEDNN_OPTS ??= oneDnn?.onednn === false ? '0' : '1';
  // TensorFlow's C++ INFO lines would otherwise interleave with our logs.
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
}

/**
 * Runs `load` (a native library load) with file descriptor 2 on a temporary file. TensorFlow 2.21 prints absl's
 * "WARNING: All log messages before absl::InitializeLog()..." and the oneDNN notice from the C library while it
 * loads, before it reads TF_CPP_MIN_LOG_LEVEL (measured: the variable hides the later INFO lines, not these two).
 * Node has no dup2, so fd 2 is closed and the file opened in its place (open takes the lowest free number), then
 * a copy of the original, kept open under another number through /proc/self/fd, is reopened as fd 2 (appending:
 * a log file is continued, not overwritten). Only on Linux, with the log level at 1 or more (not --verbose), and
 * when fds 0 and 1 are open; otherwise, or if a step fails, `load` runs as is. Errors of `load` are exceptions,
 * not lost output.
 */
export function withNativeLoadQuiet<T>(load: () => T): T {
  const saved = process.platform === 'linux' && Number(process.env.TF_CPP_MIN_LOG_LEVEL ?? '0') >= 1 ? copyOfStderr() : undefined;
  if (saved === undefined) return load();
  // A file rather than /dev/null: what TensorFlow said is kept for ikl-doctor (nativeLoadNotices).
  const file = join(tmpdir(), `ikl-tf-load-${process.pid}.log`);
  const swapped = stderrTo(file);
  try {
    return load();
  } finally {
    if (swapped) {
      closeSync(2);
      try {
        loadNotices = (loadNotices ?? '') + readFileSync(file, 'utf8');
      } catch {
        // Nothing to keep.
      }
    }
    rmSync(file, { force: true });
    // fd 2 is free here unless the swap never closed it (then this open takes another number and is closed).
    const back = tryOpen(`/proc/self/fd/${saved}`);
    if (back !== undefined && back !== 2) closeSync(back);
    closeSync(saved);
  }
}

/** A new descriptor (number >= 3) of what fd 2 is, or undefined (a socket, fds 0/1 closed, no /proc). */
function copyOfStderr(): number | undefined {
  if (!isOpen(0) || !isOpen(1)) return undefined;
  const fd = tryOpen('/proc/self/fd/2');
  if (fd !== undefined && fd < 3) {
    closeSync(fd);
    return undefined;
  }
  return fd;
}

let loadNotices: string | undefined;

/**
 * What the native library printed while it loaded (absl's preamble, the oneDNN notice), when withNativeLoadQuiet
 * hid it; undefined when it was not hidden (it went to stderr).
 */
export function nativeLoadNotices(): string | undefined {
  return loadNotices;
}

/** Closes fd 2 and opens `file` (created, private), which takes number 2; whether it did. */
function stderrTo(file: string): boolean {
  try {
    closeSync(2);
  } catch {
    return false;
  }
  const nul = tryOpen(file, 'w');
  if (nul !== undefined && nul !== 2) closeSync(nul);
  return nul === 2;
}

function isOpen(fd: number): boolean {
  // Not fstatSync: measured, an fstat of a socket stdin before tfjs-node loads made tfjs register its kernels twice.
  return existsSync(`/proc/self/fd/${fd}`);
}

function tryOpen(path: string, flags = 'a'): number | undefined {
  try {
    return openSync(path, flags, 0o600);
  } catch {
    return undefined;
  }
}

function resolvable(pkg: string): boolean {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

function tryLoad(pkg: string): { ok: true } | { ok: false; error: string } {
  try {
    withNativeLoadQuiet(() => require(pkg));
    return { ok: true };
  } catch (e) {
    return { ok: false, error: (e as Error).message.split('\n')[0] ?? String(e) };
  }
}

function visibleGpus(): string[] {
  if (process.env.CUDA_VISIBLE_DEVICES === '' || process.env.CUDA_VISIBLE_DEVICES === '-1') return [];
  try {
    const out = execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    const all = out.split('\n').filter((l) => l.startsWith('GPU '));
    const sel = process.env.CUDA_VISIBLE_DEVICES;
    if (!sel) return all;
    const ids = sel.split(',').map((s) => s.trim());
    return all.filter((l, i) => ids.includes(String(i)) || ids.some((id) => l.includes(id)));
  } catch {
    return [];
  }
}

function orDefault(list: string[], fallback: string): string[] {
  return list.length > 0 ? list : [fallback];
}

async function activate(name: 'tensorflow' | 'cpu'): Promise<void> {
  const ok = await tf.setBackend(name);
  if (!ok) throw new Error(`tfjs could not initialise the '${name}' backend`);
  await tf.ready();
}

function nativeInfo(pkg: BackendInfo['package'], warnings: string[]): BackendInfo {
  const backend = tf.backend() as unknown as { isUsingGpuDevice?: boolean; binding?: { TF_Version?: string } };
  const gpu = backend.isUsingGpuDevice === true;
  const threads = process.env.TF_NUM_INTRAOP_THREADS ? ` (${process.env.TF_NUM_INTRAOP_THREADS} intra-op threads)` : '';
  return {
    name: 'tensorflow',
    package: pkg,
    tfVersion: backend.binding?.TF_Version ?? 'unknown',
    gpu,
    devices: gpu ? orDefault(visibleGpus(), 'GPU:0') : [`CPU${threads}`],
    warnings,
    ...(oneDnn ? { oneDnn } : {}),
  };
}

/**
 * Loads and activates a backend. `choice` defaults to $IKL_BACKEND, then 'auto'. Idempotent: a second call
 * returns the backend already chosen (tfjs cannot unload a native binding).
 * 'gpu' insists on tfjs-node-gpu; a GPU that is not visible is a loud warning, never a silent CPU run.
 */
export async function initBackend(choice?: BackendChoice): Promise<BackendInfo> {
  if (current) return current;
  const want = choice ?? parseBackendChoice(process.env.IKL_BACKEND ?? 'auto', 'IKL_BACKEND');
  const warnings: string[] = [];

  if (want === 'cpu') {
    await activate('cpu');
    warnings.push(CPU_SLOWNESS_WARNING);
    return (current = { name: 'cpu', package: '@tensorflow/tfjs', tfVersion: tf.version.tfjs, gpu: false, devices: ['CPU (JavaScript)'], warnings });
  }

  setNativeEnvDefaults(want);
  if (want === 'auto' || want === 'gpu') {
    const gpuLoad = tryLoad('@tensorflow/tfjs-node-gpu');
    if (gpuLoad.ok) {
      await activate('tensorflow');
      const info = nativeInfo('@tensorflow/tfjs-node-gpu', warnings);
      if (!info.gpu) {
        warnings.push(
          'GPU REQUESTED BUT NOT VISIBLE: @tensorflow/tfjs-node-gpu loaded but TensorFlow sees no GPU ' +
            `(CUDA_VISIBLE_DEVICES=${process.env.CUDA_VISIBLE_DEVICES ?? 'unset'}); running on the CPU.`,
        );
      }
      return (current = info);
    }
    if (want === 'gpu') {
      throw new InputError(`--backend gpu: @tensorflow/tfjs-node-gpu does not load (${gpuLoad.error}). Run \`npm run setup:native -- --gpu\` on the GPU box.`);
    }
  }

  const cpuLoad = tryLoad('@tensorflow/tfjs-node');
  if (cpuLoad.ok) {
    await activate('tensorflow');
    if (want === 'auto' && visibleGpus().length > 0) {
      warnings.push('A GPU is visible but @tensorflow/tfjs-node-gpu is not installed; running on the CPU. Run `npm run setup:native -- --gpu`.');
    }
    return (current = nativeInfo('@tensorflow/tfjs-node', warnings));
  }
  if (want === 'tensorflow') {
    throw new InputError(`--backend tensorflow: @tensorflow/tfjs-node does not load (${cpuLoad.error}). Run \`npm run setup:native\`.`);
  }
  await activate('cpu');
  warnings.push(`@tensorflow/tfjs-node is not usable (${cpuLoad.error}). ${CPU_SLOWNESS_WARNING}`);
  return (current = { name: 'cpu', package: '@tensorflow/tfjs', tfVersion: tf.version.tfjs, gpu: false, devices: ['CPU (JavaScript)'], warnings });
}

/** The backend chosen by initBackend, if any. */
export function backendInfo(): BackendInfo | undefined {
  return current;
}

/** One log line naming the backend, its TensorFlow version and devices, after its warnings (loud: level warn). */
export function logBackend(log: { warn(msg: string): void; info(obj: object, msg: string): void }, info: BackendInfo): void {
  for (const w of info.warnings) log.warn(w);
  const version = info.name === 'tensorflow' ? { tensorflow: info.tfVersion } : { tfjs: info.tfVersion };
  log.info({ backend: info.name, package: info.package, ...version, gpu: info.gpu, devices: info.devices, onednn: info.oneDnn?.onednn }, 'backend');
}
