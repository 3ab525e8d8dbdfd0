/**
 * `ikl-doctor`: what this machine gives the toolkit, and the exact fix when it cannot run. Users meet the tool
 * first on a GPU box whose CUDA libraries may not match; the loader's own messages ("Could not load dynamic
 * library ...") are easy to miss and say nothing about where it looked.
 *
 * Reports: the backend packages and TensorFlow version, the devices, for a GPU set-up which CUDA/cuDNN libraries
 * were found or are missing and where (LD_LIBRARY_PATH, the `ldconfig -p` cache, the pip `nvidia-*` wheels),
 * unresolved libraries of the native binding (`ldd`), oneDNN and thread settings, and a one-second convolution
 * benchmark. `usable` is false (the CLI exits 2) when the native backend, or a GPU that was asked for, cannot be
 * used; `fixes` then says what to run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend, nativeLoadNotices, parseBackendChoice, type BackendChoice, type BackendInfo } from './backend.js';
import { InputError } from './errors.js';

const require = createRequire(import.meta.url);

/** One line of the diagnosis. */
export interface Finding {
  section: string;
  status: 'ok' | 'info' | 'warn' | 'fail';
  text: string;
}

export interface GpuLibrary {
  /** soname the TensorFlow 2.x CUDA 12 build opens, e.g. libcudnn.so.9 */
  soname: string;
  /** pip wheel that ships it (nvidia-*-cu12), undefined for the driver */
  wheel?: string;
  path?: string;
  /** How the loader would find it: a folder of LD_LIBRARY_PATH (or --lib-dirs), the ldconfig cache, or only in a
   *  pip wheel folder that is not on the loader's path (found, but TensorFlow will not open it). */
  via?: 'path' | 'ldconfig' | 'wheel-only';
}

export interface Diagnosis {
  findings: Finding[];
  /** Shell commands or settings that fix each failure, in order. */
  fixes: string[];
  usable: boolean;
  backend?: BackendInfo;
  gpuLibraries?: GpuLibrary[];
  /** Where the GPU libraries were looked for. */
  searched?: string[];
  benchmark?: { op: string; msPerOp: number; gflops: number; runs: number };
}

export interface DoctorOptions {
  /** Backend to check; default $IKL_BACKEND, then auto. */
  backend?: BackendChoice;
  /** Replaces the library search (LD_LIBRARY_PATH, ldconfig, pip wheels) by these folders: for tests. */
  libDirs?: string[];
  /** Length of the convolution benchmark (default 1 s; 0 skips it). */
  benchmarkSeconds?: number;
}

/**
 * What TensorFlow 2.x built for CUDA 12 opens at start-up (the tensorflow wheels of setup:native --gpu), with the
 * pip wheel that provides each. libcuda.so.1 comes with the NVIDIA driver, never from pip.
 */
export const GPU_LIBRARIES: ReadonlyArray<{ soname: string; wheel?: string; wheelDir?: string }> = [
  { soname: 'libcuda.so.1' },
  { soname: 'libcudart.so.12', wheel: 'nvidia-cuda-runtime-cu12', wheelDir: 'cuda_runtime' },
  { soname: 'libcublas.so.12', wheel: 'nvidia-cublas-cu12', wheelDir: 'cublas' },
  { soname: 'libcublasLt.so.12', wheel: 'nvidia-cublas-cu12', wheelDir: 'cublas' },
  { soname: 'libcufft.so.11', wheel: 'nvidia-cufft-cu12', wheelDir: 'cufft' },
  { soname: 'libcusolver.so.11', wheel: 'nvidia-cusolver-cu12', wheelDir: 'cusolver' },
  { soname: 'libcusparse.so.12', wheel: 'nvidia-cusparse-cu12', wheelDir: 'cusparse' },
  { soname: 'libcudnn.so.9', wheel: 'nvidia-cudnn-cu12', wheelDir: 'cudnn' },
];

function packageVersion(pkg: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

function run(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
  } catch {
    return undefined;
  }
}

/** site-packages/nvidia/<x>/lib folders of the python3 on PATH (where `pip install nvidia-*-cu12` puts them). */
function nvidiaWheelDirs(): string[] {
  const out = run('python3', ['-c', 'import site,sys; print("\\n".join(site.getsitepackages()+[site.getusersitepackages()]))']);
  if (!out) return [];
  const dirs: string[] = [];
  for (const sp of out.split('\n').filter(Boolean)) {
    const nv = join(sp, 'nvidia');
    if (!existsSync(nv)) continue;
    for (const d of readdirSync(nv)) if (existsSync(join(nv, d, 'lib'))) dirs.push(join(nv, d, 'lib'));
  }
  return dirs;
}

/** Finds each GPU library on the loader path (LD_LIBRARY_PATH), in the ldconfig cache, then in pip wheel folders; `libDirs` replaces all three. */
export function findGpuLibraries(libDirs?: string[]): { libraries: GpuLibrary[]; searched: string[]; wheelDirs: string[] } {
  const ldPath = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  const wheelDirs = libDirs ? [] : nvidiaWheelDirs();
  const cache = libDirs ? '' : (run('ldconfig', ['-p']) ?? run('/sbin/ldconfig', ['-p']) ?? '');
  const searched = libDirs
    ? [...libDirs]
    : [`LD_LIBRARY_PATH (${ldPath.length ? ldPath.join(':') : 'unset'})`, 'ldconfig -p', ...wheelDirs.map((d) => `pip wheel ${d}`)];
  const loaderDirs = libDirs ?? ldPath;
  const libraries = GPU_LIBRARIES.map(({ soname, wheel }): GpuLibrary => {
    const onPath = loaderDirs.map((d) => join(d, soname)).find((p) => existsSync(p));
    const inCache = new RegExp(`^\\s*${soname.replace(/\./g, '\\.')} .*=> (\\S+)`, 'm').exec(cache)?.[1];
    const inWheel = wheelDirs.map((d) => join(d, soname)).find((p) => existsSync(p));
    const base = { soname, ...(wheel ? { wheel } : {}) };
    if (onPath) return { ...base, path: onPath, via: 'path' };
    if (inCache) return { ...base, path: inCache, via: 'ldconfig' };
    if (inWheel) return { ...base, path: inWheel, via: 'wheel-only' };
    return base;
  });
  return { libraries, searched, wheelDirs };
}

/** Libraries the native binding of `pkg` links against that the loader cannot resolve (`ldd ... => not found`). */
function unresolvedLinks(pkg: string): string[] {
  let binding: string;
  try {
    const root = dirname(require.resolve(`${pkg}/package.json`));
    const lib = join(root, 'lib');
    const napi = readdirSync(lib).find((d) => d.startsWith('napi-v'));
    binding = join(lib, napi ?? '', 'tfjs_binding.node');
    if (!existsSync(binding)) return [];
  } catch {
    return [];
  }
  const out = run('ldd', [binding]) ?? '';
  return out
    .split('\n')
    .filter((l) => l.includes('not found'))
    .map((l) => l.trim().split(/\s+/)[0]!);
}

/** A conv2d (3x3, 32 → 32 channels, 8 images of 32x32: 0.15 GFLOP) repeated for `seconds`: ms per op, GFLOP/s. */
export function convBenchmark(seconds: number): NonNullable<Diagnosis['benchmark']> {
  const [n, h, w, c] = [8, 32, 32, 32];
  const x = tf.randomUniform([n, h, w, c]) as tf.Tensor4D;
  const k = tf.randomUniform([3, 3, c, c]) as tf.Tensor4D;
  try {
    tf.tidy(() => tf.conv2d(x, k, 1, 'same').dataSync()); // warm-up: kernel selection, allocation
    let runs = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000 || runs === 0) {
      tf.tidy(() => tf.conv2d(x, k, 1, 'same').dataSync());
      runs++;
    }
    const ms = (performance.now() - t0) / runs;
    const flops = 2 * n * h * w * c * c * 9;
    return { op: `conv2d 3x3 ${c}->${c} on ${n}x${h}x${w}`, msPerOp: ms, gflops: flops / (ms * 1e6), runs };
  } finally {
    tf.dispose([x, k]);
  }
}

/**
 * Whether oneDNN is on, from TensorFlow's own notice at load ("oneDNN custom operations are on/off"), which
 * src/backend.ts keeps when it hides it. The environment variable alone does not say: TensorFlow decides.
 */
export function oneDnnStatement(notices: string | undefined): string {
  const m = /oneDNN custom operations are (on|off)/.exec(notices ?? '');
  if (m) return `oneDNN: ${m[1]} (TensorFlow's notice when it loaded)`;
  // TensorFlow prints no notice when the variable turns oneDNN off.
  if (process.env.TF_ENABLE_ONEDNN_OPTS === '0') return 'oneDNN: off (TF_ENABLE_ONEDNN_OPTS=0)';
  return `oneDNN: unknown (TensorFlow's load notice was not captured; it is on stderr above when shown); TF_ENABLE_ONEDNN_OPTS=${process.env.TF_ENABLE_ONEDNN_OPTS ?? 'unset'}`;
}

/** Peak fp32 GFLOP/s of this CPU (cores × clock × FLOP per cycle of its widest FMA units), from /proc/cpuinfo. */
export function cpuPeak(cpuinfo = readText('/proc/cpuinfo')): { gflops: number; how: string } | undefined {
  if (!cpuinfo) return undefined;
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1]);
  const flags = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1]?.split(/\s+/) ?? [];
  if (!(mhz > 0)) return undefined;
  // FLOP per cycle per core, fp32: 2 FMA units × (16 lanes AVX-512 | 8 lanes AVX2) × 2, or SSE's 4 lanes × 2 × 2.
  const perCycle = flags.includes('avx512f') ? 64 : flags.includes('avx2') && flags.includes('fma') ? 32 : 16;
  const cores = availableParallelism();
  const unit = flags.includes('avx512f') ? 'AVX-512' : perCycle === 32 ? 'AVX2+FMA' : 'SSE';
  return { gflops: (cores * mhz * perCycle) / 1000, how: `${cores} cores × ${(mhz / 1000).toFixed(2)} GHz × ${perCycle} FLOP/cycle (${unit})` };
}

/** The benchmark figure against the CPU's peak and the machine's load, so that a number has something to compare with. */
export function benchmarkReference(gflops: number, peak: { gflops: number; how: string } | undefined, load: number, cores: number): string {
  const busy =
    load >= cores * 0.75 ? `; load average ${load.toFixed(1)} on ${cores} cores: other processes share the CPU, the figure is low for that reason` : '';
  if (!peak) return `reference: no CPU peak known for this platform${busy}`;
  return `reference: ${((100 * gflops) / peak.gflops).toFixed(1)}% of this CPU's fp32 peak, ${peak.gflops.toFixed(0)} GFLOP/s = ${peak.how}; a conv this small reaches a fraction of it even on an idle machine${busy}`;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export async function diagnose(opts: DoctorOptions = {}): Promise<Diagnosis> {
  const want = opts.backend ?? parseBackendChoice(process.env.IKL_BACKEND ?? 'auto', 'IKL_BACKEND');
  const findings: Finding[] = [];
  const fixes: string[] = [];
  const add = (section: string, status: Finding['status'], text: string) => findings.push({ section, status, text });
  let usable = true;

  add('system', 'info', `node ${process.version}, ${process.platform}-${process.arch}, ${availableParallelism()} cores`);
  add('system', 'info', `requested backend: ${want}${opts.backend ? '' : ` (from ${process.env.IKL_BACKEND ? 'IKL_BACKEND' : 'the default'})`}`);
  const versions: Record<string, string | undefined> = {};
  for (const pkg of ['@tensorflow/tfjs', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu']) {
    versions[pkg] = packageVersion(pkg);
    add('packages', versions[pkg] ? 'ok' : 'info', `${pkg}: ${versions[pkg] ?? 'not installed'}`);
  }
  if (want === 'gpu' && !versions['@tensorflow/tfjs-node-gpu']) {
    usable = false;
    add('packages', 'fail', '--backend gpu needs @tensorflow/tfjs-node-gpu, which is not installed');
    fixes.push('npm run setup:native -- --gpu   (on the GPU machine: tensorflow wheel + @tensorflow/tfjs-node-gpu)');
  }

  // Threads and oneDNN as asked for; whether oneDNN is on is what TensorFlow says when it loads (below).
  const env = (k: string) => process.env[k] ?? 'unset';
  add(
    'threads',
    'info',
    `TF_ENABLE_ONEDNN_OPTS=${env('TF_ENABLE_ONEDNN_OPTS')}${process.env.TF_ENABLE_ONEDNN_OPTS === undefined ? ' (ikl-at sets 1, or 0 where its oneDNN probe faults: see the onednn line)' : ''}`,
  );
  add(
    'threads',
    'info',
    `TF_NUM_INTRAOP_THREADS=${env('TF_NUM_INTRAOP_THREADS')}, TF_NUM_INTEROP_THREADS=${env('TF_NUM_INTEROP_THREADS')}, OMP_NUM_THREADS=${env('OMP_NUM_THREADS')} (unset: TensorFlow uses all ${availableParallelism()} cores)`,
  );

  // GPU libraries: checked when a GPU is asked for, or could be used.
  const gpus = (run('nvidia-smi', ['-L']) ?? '').split('\n').filter((l) => l.startsWith('GPU '));
  const gpuWanted = want === 'gpu';
  let gpuLibraries: GpuLibrary[] | undefined;
  let searched: string[] | undefined;
  if (gpuWanted || versions['@tensorflow/tfjs-node-gpu'] || gpus.length > 0) {
    add(
      'gpu',
      gpus.length ? 'ok' : gpuWanted ? 'fail' : 'info',
      gpus.length ? `nvidia-smi: ${gpus.join('; ')}` : 'nvidia-smi: no GPU listed (or no NVIDIA driver)',
    );
    add('gpu', 'info', `CUDA_VISIBLE_DEVICES=${env('CUDA_VISIBLE_DEVICES')}`);
    const found = findGpuLibraries(opts.libDirs);
    gpuLibraries = found.libraries;
    searched = found.searched;
    add('gpu', 'info', `looked in: ${found.searched.join(', ')}`);
    const bad = gpuWanted ? 'fail' : 'warn';
    for (const l of found.libraries) {
      if (!l.path) add('gpu', bad, `${l.soname}: MISSING`);
      else if (l.via === 'wheel-only')
        add('gpu', bad, `${l.soname}: only in ${dirname(l.path)}, which is not on LD_LIBRARY_PATH (TensorFlow will not find it)`);
      else add('gpu', 'ok', `${l.soname}: ${l.path}${l.via === 'ldconfig' ? ' (ldconfig cache)' : ''}`);
    }
    const missing = found.libraries.filter((l) => !l.path);
    const offPath = [...new Set(found.libraries.filter((l) => l.via === 'wheel-only').map((l) => dirname(l.path!)))];
    if (gpuWanted && (missing.length > 0 || offPath.length > 0)) {
      usable = false;
      if (missing.some((l) => !l.wheel)) fixes.push('install the NVIDIA driver (it provides libcuda.so.1); check with nvidia-smi');
      const wheels = [...new Set(missing.flatMap((l) => (l.wheel ? [l.wheel] : [])))];
      if (wheels.length) {
        fixes.push(`python3 -m pip install ${wheels.join(' ')}`);
        fixes.push(
          'export LD_LIBRARY_PATH=$(python3 -c \'import glob, nvidia; print(":".join(glob.glob(list(nvidia.__path__)[0] + "/*/lib")))\'):$LD_LIBRARY_PATH',
        );
      } else if (offPath.length) {
        fixes.push(`export LD_LIBRARY_PATH=${offPath.join(':')}:$LD_LIBRARY_PATH`);
      }
    }
    if (gpuWanted && gpus.length === 0) {
      usable = false;
      fixes.push('no GPU is visible: check the driver with nvidia-smi, and CUDA_VISIBLE_DEVICES');
    }
  }

  // The native binding: unresolved shared libraries explain most "does not load" failures.
  const nativePkg = want === 'gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  if (want !== 'cpu' && versions[nativePkg]) {
    const unresolved = unresolvedLinks(nativePkg);
    if (unresolved.length) add('native', 'fail', `${nativePkg} binding: unresolved libraries ${unresolved.join(', ')} (ldd)`);
  }

  let backend: BackendInfo | undefined;
  if (usable || want !== 'gpu') {
    try {
      backend = await initBackend(want);
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      add('backend', 'fail', e.message);
      usable = false;
      fixes.push(want === 'gpu' ? 'npm run setup:native -- --gpu' : 'npm run setup:native');
    }
  }
  if (backend) {
    for (const w of backend.warnings) add('backend', 'warn', w);
    const native = backend.name === 'tensorflow';
    add(
      'backend',
      native || want === 'cpu' ? 'ok' : 'fail',
      `${backend.name} from ${backend.package}, ${native ? `TensorFlow ${backend.tfVersion}` : `tfjs ${backend.tfVersion}`}`,
    );
    add('backend', 'info', `devices: ${backend.devices.join(', ')}`);
    if (native) add('backend', 'info', oneDnnStatement(nativeLoadNotices()));
    if (backend.oneDnn) {
      // The path the convolutions take on this CPU (onednn.ts): oneDNN, or TensorFlow's Eigen kernels where oneDNN faults.
      const d = backend.oneDnn;
      add(
        'onednn',
        d.onednn ? 'ok' : 'warn',
        `convolutions: ${d.onednn ? 'oneDNN kernels (fast path)' : "TensorFlow's Eigen kernels (safe path)"}; ${d.reason}`,
      );
    }
    if (!native && want !== 'cpu') {
      usable = false;
      fixes.push('npm run setup:native   (builds @tensorflow/tfjs-node against the tensorflow-cpu wheel; needs python3, make, a C++ compiler)');
    }
    if (want === 'gpu' && !backend.gpu) {
      usable = false;
      if (!fixes.length) fixes.push('TensorFlow loaded but sees no GPU: run with TF_CPP_MIN_LOG_LEVEL=0 to see which CUDA library it failed to open');
    }
  }

  let benchmark: Diagnosis['benchmark'];
  const seconds = opts.benchmarkSeconds ?? 1;
  if (backend && seconds > 0) {
    benchmark = convBenchmark(seconds);
    add('benchmark', 'info', `${benchmark.op}: ${benchmark.msPerOp.toFixed(2)} ms, ${benchmark.gflops.toFixed(1)} GFLOP/s (${benchmark.runs} runs)`);
    add('benchmark', 'info', benchmarkReference(benchmark.gflops, cpuPeak(), loadavg()[0] ?? 0, availableParallelism()));
  }
  return {
    findings,
    fixes,
    usable,
    ...(backend ? { backend } : {}),
    ...(gpuLibraries ? { gpuLibraries } : {}),
    ...(searched ? { searched } : {}),
    ...(benchmark ? { benchmark } : {}),
  };
}

/** The diagnosis as text: one line per finding, then the verdict and the fixes. */
export function formatDiagnosis(d: Diagnosis): string {
  const mark = { ok: 'ok  ', info: '    ', warn: 'WARN', fail: 'FAIL' } as const;
  const lines = d.findings.map((f) => `${mark[f.status]} ${f.section.padEnd(9)} ${f.text}`);
  lines.push(d.usable ? 'verdict: usable' : 'verdict: NOT USABLE as requested');
  for (const f of d.fixes) lines.push(`fix: ${f}`);
  return `${lines.join('\n')}\n`;
}
