/**
 * `ikl-doctor` on this (CPU) machine, and with a simulated GPU set-up: a library folder holding only some of
 * the CUDA/cuDNN libraries, `--backend gpu` without @tensorflow/tfjs-node-gpu.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { heavy } from '../helpers.js';
import { benchmarkReference, cpuPeak, diagnose, GPU_LIBRARIES, oneDnnStatement } from '../../src/doctor.js';
import { availableParallelism } from 'node:os';
import { tempDir } from '../eval/fixture.js';

const root = new URL('../../..', import.meta.url).pathname;
function doctor(args: string[]): { status: number | null; stdout: string; stderr: string } {
  // The environment of a user's shell: this test process has set TensorFlow's variables for itself.
  const env = { ...process.env };
  delete env.TF_CPP_MIN_LOG_LEVEL;
  delete env.TF_ENABLE_ONEDNN_OPTS;
  const r = spawnSync(process.execPath, [join(root, 'bin', 'ikl-doctor.js'), ...args], { encoding: 'utf8', timeout: 120_000, env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('a simulated GPU set-up with half of the CUDA libraries: the missing ones, where it looked, the exact pip fix', async () => {
  const dir = tempDir('ikl-doctor-');
  const lib = join(dir, 'lib');
  mkdirSync(lib);
  const present = ['libcuda.so.1', 'libcudart.so.12', 'libcublas.so.12', 'libcublasLt.so.12'];
  for (const so of present) writeFileSync(join(lib, so), '');
  const d = await diagnose({ backend: 'gpu', libDirs: [lib], benchmarkSeconds: 0 });
  assert.equal(d.usable, false);
  assert.deepEqual(d.searched, [lib]);
  assert.deepEqual(
    d.gpuLibraries!.filter((l) => l.path).map((l) => l.path),
    present.map((so) => join(lib, so)),
  );
  const missing = GPU_LIBRARIES.filter((l) => !present.includes(l.soname));
  assert.deepEqual(
    d.gpuLibraries!.filter((l) => !l.path).map((l) => l.soname),
    missing.map((l) => l.soname),
  );
  // The fix installs exactly the wheels of the missing libraries (cufft, cusolver, cusparse, cudnn).
  assert.ok(d.fixes.includes('python3 -m pip install nvidia-cufft-cu12 nvidia-cusolver-cu12 nvidia-cusparse-cu12 nvidia-cudnn-cu12'), d.fixes.join('\n'));
  assert.ok(
    d.fixes.some((f) => f.startsWith('npm run setup:native -- --gpu')),
    'tfjs-node-gpu is not installed here: its set-up is the first fix',
  );
  assert.ok(d.findings.some((f) => f.status === 'fail' && f.text === 'libcudnn.so.9: MISSING'));
});

test('ikl-doctor --backend gpu with an empty library folder: exit 2, every library MISSING, the fixes printed', () => {
  const empty = tempDir('ikl-doctor-empty-');
  const r = doctor(['--backend', 'gpu', '--no-benchmark', '--lib-dirs', empty]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stdout, new RegExp(`looked in: ${empty}\\n`));
  for (const { soname } of GPU_LIBRARIES) assert.match(r.stdout, new RegExp(`FAIL gpu +${soname.replace(/\./g, '\\.')}: MISSING`));
  assert.match(r.stdout, /verdict: NOT USABLE as requested\nfix: npm run setup:native -- --gpu/);
  assert.match(r.stdout, /fix: python3 -m pip install nvidia-cuda-runtime-cu12 /);
});

test('ikl-doctor --backend cpu: usable, pure-JS backend, a benchmark figure', () => {
  const r = doctor(['--backend', 'cpu']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /ok +backend +cpu from @tensorflow\/tfjs, tfjs 4\.\d+\.\d+/);
  assert.match(r.stdout, /benchmark conv2d 3x3 32->32 on 8x32x32: [\d.]+ ms, [\d.]+ GFLOP\/s \(\d+ runs\)/);
  assert.match(r.stdout, /verdict: usable\n$/);
});

test(
  'ikl-doctor on the native CPU backend: TensorFlow version, devices, oneDNN and threads, benchmark; no TensorFlow INFO lines but the two oneDNN notices',
  heavy,
  () => {
    const r = doctor(['--backend', 'tensorflow', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const d = JSON.parse(r.stdout) as Awaited<ReturnType<typeof diagnose>>;
    assert.equal(d.usable, true);
    assert.equal(d.backend!.name, 'tensorflow');
    assert.match(d.backend!.tfVersion, /^2\.\d+\.\d+$/);
    assert.deepEqual(d.backend!.devices, ['CPU']);
    assert.ok(d.benchmark!.gflops > 0 && d.benchmark!.runs >= 1);
    assert.ok(d.findings.some((f) => f.section === 'threads' && /TF_ENABLE_ONEDNN_OPTS=/.test(f.text)));
    assert.ok(d.findings.some((f) => f.section === 'backend' && /^oneDNN: (on|off|unknown)/.test(f.text)));
    assert.ok(d.findings.some((f) => f.section === 'benchmark' && /^reference: /.test(f.text)));
    // TF_CPP_MIN_LOG_LEVEL=2 hides cpu_feature_guard & co.; the oneDNN notice (and absl's preamble) are printed at
    // library load, before TensorFlow reads its log level: at most those two lines remain.
    const tfLines = r.stderr.split('\n').filter((l) => /^[IWE]\d{4} |^WARNING: All log messages before absl/.test(l));
    assert.ok(
      tfLines.every((l) => /oneDNN custom operations|All log messages before absl/.test(l)),
      tfLines.join('\n'),
    );
    assert.ok(!/cpu_feature_guard/.test(r.stderr));
    const verbose = doctor(['--backend', 'tensorflow', '--no-benchmark', '--verbose']);
    assert.equal(verbose.status, 0, verbose.stderr);
    assert.match(verbose.stderr, /cpu_feature_guard/, '--verbose shows TensorFlow INFO lines');
  },
);

test("doctor: oneDNN's state is TensorFlow's notice; the benchmark is put against the CPU's peak and load", () => {
  assert.equal(oneDnnStatement('I0000 port.cc:153] oneDNN custom operations are on. You may see'), "oneDNN: on (TensorFlow's notice when it loaded)");
  assert.equal(oneDnnStatement('oneDNN custom operations are off.'), "oneDNN: off (TensorFlow's notice when it loaded)");
  assert.match(oneDnnStatement(undefined), /^oneDNN: (unknown|off)/);
  const cpuinfo = 'processor\t: 0\ncpu MHz\t\t: 2500.000\nflags\t\t: fpu sse avx avx2 fma\n';
  const peak = cpuPeak(cpuinfo)!;
  const cores = availableParallelism();
  assert.equal(peak.gflops, cores * 2.5 * 32, 'cores × GHz × 32 FLOP/cycle for AVX2+FMA');
  assert.equal(cpuPeak(cpuinfo.replace('fma', 'fma avx512f'))!.gflops, cores * 2.5 * 64);
  assert.equal(cpuPeak('no clock here'), undefined);
  assert.match(benchmarkReference(16, { gflops: 160, how: 'x' }, 0.2, 2), /^reference: 10\.0% of this CPU's fp32 peak, 160 GFLOP\/s = x;/);
  assert.match(benchmarkReference(16, { gflops: 160, how: 'x' }, 6, 2), /load average 6\.0 on 2 cores/);
  assert.doesNotMatch(benchmarkReference(16, { gflops: 160, how: 'x' }, 0.2, 2), /load average/);
});
