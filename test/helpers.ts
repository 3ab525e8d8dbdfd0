/** Shared test utilities: backend selection from $IKL_BACKEND, leak checks, numeric comparison. */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';

/** Selects the backend named by $IKL_BACKEND (default auto) once per test process. */
export const backend = await initBackend();

/** Options for tests that need the native backend to finish in reasonable time. */
export const heavy = { skip: backend.name === 'cpu' ? 'needs the native backend (IKL_BACKEND=cpu run)' : false } as const;

/** Runs fn and asserts that no tensor is left behind. */
export async function noLeak<T>(fn: () => T | Promise<T>): Promise<T> {
  const before = tf.memory().numTensors;
  const out = await fn();
  assert.equal(tf.memory().numTensors, before, 'tensor leak: tf.memory().numTensors grew');
  return out;
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what = 'values'): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != ${expected.length}`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const err = Math.abs(a - e) / Math.max(1, Math.abs(e));
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  assert.ok(worst <= tol, `${what}: max relative error ${worst} at index ${at} (${actual[at]} vs ${expected[at]}) > ${tol}`);
}

/** Deterministic pseudo-random numbers for fixtures (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A batch of CIFAR-shaped images with pixels uniform in [0, 1), deterministic from the seed. */
export function randomImages(batch: number, seed: number): tf.Tensor4D {
  const r = rng(seed);
  return tf.tensor4d(Float32Array.from({ length: batch * 32 * 32 * 3 }, r), [batch, 32, 32, 3]);
}
