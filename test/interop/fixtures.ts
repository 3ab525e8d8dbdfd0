/** The PyTorch fixtures of scripts/fixtures/torch_interop.py and the tfjs builds they correspond to. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { REDUCED_BUILDERS } from '../../src/models/archs.js';
import { initializeWeights } from '../../src/models/init.js';
import type { Family } from '../../src/interop/index.js';

export const FIXTURES = new URL('../../../test/fixtures/interop/', import.meta.url).pathname;
export const fixture = (file: string): string => join(FIXTURES, file);

export interface Case {
  file: string;
  family: Exclude<Family, 'default'>;
  params: { depth?: number; widen?: number; width?: number };
  numClasses: number;
  /** PyTorch's logits (eval mode) on inputs.bin. */
  logits: number[][];
  note?: string;
}

export const CASES = JSON.parse(readFileSync(fixture('cases.json'), 'utf8')) as { torch: string; main: Case[]; variants: Case[] };
export const FULL_SIZE_KEYS = JSON.parse(readFileSync(fixture('full_size_keys.json'), 'utf8')) as Record<string, Record<string, number[]>>;

/** The 4 fixed NHWC inputs the fixture logits were computed on. */
export function fixtureInputs(): tf.Tensor4D {
  const b = readFileSync(fixture('inputs.bin'));
  return tf.tensor4d(new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4).slice(), [4, 32, 32, 3]);
}

/** The tfjs build of a fixture's network (same family and reduced size), seeded weights. */
export function buildCase(c: Pick<Case, 'family' | 'params' | 'numClasses'>, seed = 1): tf.LayersModel {
  const p = c.params;
  const model =
    c.family === 'trades-wrn' || c.family === 'dm-wrn'
      ? REDUCED_BUILDERS[c.family](p.depth!, p.widen!, c.numClasses)
      : REDUCED_BUILDERS[c.family](p.width!, c.numClasses);
  initializeWeights(model, { conv: 'torch-default', linearBias: 'torch-default' }, c.numClasses, seed);
  return model;
}

/** max |a - b| / max |b| over all logits: the comparison "relative to the logit scale". */
export function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return d / s;
}

/** Seeded non-trivial BN statistics and affine parameters (so a swapped mean/var or gamma/beta shows). */
export function randomiseBn(model: tf.LayersModel, seed: number): void {
  let a = seed >>> 0;
  const r = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const fill: Record<string, () => number> = {
    gamma: () => 0.8 + 0.4 * r(),
    beta: () => 0.2 * (r() - 0.5),
    moving_mean: () => 0.2 * (r() - 0.5),
    moving_variance: () => 0.5 + r(),
  };
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    for (const v of layer.weights) {
      const role = v.originalName.slice(v.originalName.lastIndexOf('/') + 1);
      const n = v.shape[0]!;
      tf.tidy(() => {
        v.write(tf.tensor1d(Float32Array.from({ length: n }, fill[role]!)));
      });
    }
  }
}

/** The models whose exports are checked by PyTorch (scripts/fixtures/interop-export.mjs, then torch_interop.py). */
export function exportCases(): Array<Case & { seed: number }> {
  return CASES.main.map((c, i) => ({ ...c, seed: 500 + i }));
}

/** A fixture-sized model with seeded weights and BN statistics, as exported for the PyTorch check. */
export function exportModelOf(c: Case & { seed: number }): tf.LayersModel {
  const model = buildCase(c, c.seed);
  randomiseBn(model, c.seed);
  return model;
}
