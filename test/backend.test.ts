/**
 * Backend selection, checked in child processes: a process can load only one native binding, and the choice
 * is made once per process.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { parseBackendChoice } from '../src/backend.js';
import { InputError } from '../src/errors.js';

const backendModule = new URL('../src/backend.js', import.meta.url).href;

/** Runs initBackend(choice) in a fresh process and returns its BackendInfo, or the error it threw. */
function probe(env: Record<string, string | undefined>, choice?: string): { info?: Record<string, unknown>; error?: { name: string; message: string } } {
  const script = `
    const { initBackend } = await import(${JSON.stringify(backendModule)});
    try { console.log(JSON.stringify({ info: await initBackend(${choice ? JSON.stringify(choice) : 'undefined'}) })); }
    catch (e) { console.log(JSON.stringify({ error: { name: e.name, message: e.message } })); }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

function nativeLoads(): boolean {
  const r = spawnSync(process.execPath, ['-e', "require('@tensorflow/tfjs-node')"], { encoding: 'utf8' });
  return r.status === 0;
}

test('parseBackendChoice accepts the four names and rejects others naming the source', () => {
  for (const c of ['auto', 'tensorflow', 'gpu', 'cpu']) assert.equal(parseBackendChoice(c), c);
  assert.throws(
    () => parseBackendChoice('cuda', 'IKL_BACKEND'),
    (e: unknown) => e instanceof InputError && /IKL_BACKEND: expected one of auto\|tensorflow\|gpu\|cpu, got 'cuda'/.test(e.message),
  );
});

test('IKL_BACKEND=cpu selects the pure-JS backend with the loud slowness warning', () => {
  const { info } = probe({ IKL_BACKEND: 'cpu' });
  assert.equal(info?.name, 'cpu');
  assert.equal(info?.package, '@tensorflow/tfjs');
  assert.ok(
    (info?.warnings as string[]).some((w) => /640x/.test(w)),
    'no slowness warning',
  );
});

test('an unknown IKL_BACKEND is an InputError naming the variable', () => {
  const { error } = probe({ IKL_BACKEND: 'tpu' });
  assert.equal(error?.name, 'InputError');
  assert.match(error!.message, /^IKL_BACKEND: expected one of/);
});

test(
  'tensorflow: the native binding reports the TensorFlow C library version and its devices',
  { skip: nativeLoads() ? false : 'the native backend is not set up (npm run setup:native)' },
  () => {
    const { info } = probe({ IKL_BACKEND: undefined }, 'tensorflow');
    assert.equal(info?.name, 'tensorflow');
    assert.equal(info?.package, '@tensorflow/tfjs-node');
    assert.match(String(info?.tfVersion), /^2\.\d+\.\d+/);
    assert.ok((info?.devices as string[]).length > 0);
    // auto prefers the same native backend when no GPU package is installed.
    assert.equal(probe({ IKL_BACKEND: 'auto' }).info?.name, 'tensorflow');
  },
);

test('gpu without @tensorflow/tfjs-node-gpu installed is an InputError that says how to set it up, never a silent CPU run', () => {
  const gpuLoads = spawnSync(process.execPath, ['-e', "require('@tensorflow/tfjs-node-gpu')"]).status === 0;
  if (gpuLoads) return; // A GPU box: covered by the warning path instead.
  const { error } = probe({ IKL_BACKEND: undefined }, 'gpu');
  assert.equal(error?.name, 'InputError');
  assert.match(error!.message, /setup:native -- --gpu/);
});
