/**
 * tfjs model ↔ PyTorch state_dict, given a TorchMapping (mapping.ts): the expected keys and shapes of a model,
 * the strict comparison with a file's keys, the layout changes, and writing / reading the model's variables.
 */
import * as tf from '@tensorflow/tfjs';
import type { OutTensor, TorchTensor } from './formats.js';
import type { TorchMapping } from './mapping.js';

/** One PyTorch tensor of a model: its key, PyTorch shape, and the tfjs variable it comes from. */
export interface KeySpec {
  key: string;
  shape: number[];
  variable: tf.LayerVariable;
  /** tfjs → PyTorch axis order: torch axis i is tfjs axis perm[i] (identity for vectors). */
  perm: number[];
}

// The tfjs weight name (after the last '/') → the PyTorch parameter name, per layer class.
const BN_NAMES: Record<string, string> = { gamma: 'weight', beta: 'bias', moving_mean: 'running_mean', moving_variance: 'running_var' };

/** Every PyTorch key of the model under `mapping`, in model.weights order (BN: PyTorch's order). */
export function expectedKeys(model: tf.LayersModel, mapping: TorchMapping): KeySpec[] {
  const specs: KeySpec[] = [];
  for (const layer of model.layers) {
    if (layer.weights.length === 0) continue;
    const path = mapping.modulePath(layer.name);
    if (path === null) continue;
    const cls = layer.getClassName();
    for (const v of layer.weights) {
      const role = v.originalName.slice(v.originalName.lastIndexOf('/') + 1);
      const s = v.shape as number[];
      let name: string | undefined;
      let perm = [0];
      let shape = s;
      if (cls === 'Conv2D' && role === 'kernel') {
        name = 'weight';
        perm = [3, 2, 0, 1]; // HWIO → OIHW
        shape = perm.map((p) => s[p]!);
      } else if (cls === 'DepthwiseConv2D' && role === 'depthwise_kernel') {
        name = 'weight'; // [kh, kw, C, m] → [C·m, 1, kh, kw] (groups = C, output channel c·m + j)
        perm = [2, 3, 0, 1];
        shape = [s[2]! * s[3]!, 1, s[0]!, s[1]!];
      } else if (cls === 'Dense' && role === 'kernel') {
        name = 'weight';
        perm = [1, 0];
        shape = [s[1]!, s[0]!];
      } else if (role === 'bias' && (cls === 'Conv2D' || cls === 'DepthwiseConv2D' || cls === 'Dense')) {
        name = 'bias';
      } else if (cls === 'BatchNormalization') {
        name = BN_NAMES[role];
      }
      if (!name) throw new Error(`interop: no PyTorch counterpart for weight '${v.originalName}' of a ${cls} layer`);
      specs.push({ key: `${path}.${name}`, shape, variable: v, perm: shape.length > 1 ? perm : [0] });
    }
  }
  return specs;
}

/** values (row-major, shape `from`) permuted so that out axis i is in axis perm[i]. */
export function permute(values: Float32Array, from: readonly number[], perm: readonly number[]): Float32Array {
  if (perm.length <= 1) return values;
  const rank = from.length;
  const strides = from.map((_, i) => from.slice(i + 1).reduce((a, b) => a * b, 1));
  const outShape = perm.map((p) => from[p]!);
  const outStrides = perm.map((p) => strides[p]!); // source stride of each output axis
  const out = new Float32Array(values.length);
  if (rank === 2) {
    const [a, b] = outShape as [number, number];
    const [sa, sb] = outStrides as [number, number];
    for (let i = 0, k = 0; i < a; i++) for (let j = 0; j < b; j++) out[k++] = values[i * sa + j * sb]!;
    return out;
  }
  const [a, b, c, d] = outShape as [number, number, number, number];
  const [sa, sb, sc, sd] = outStrides as [number, number, number, number];
  let k = 0;
  for (let i = 0; i < a; i++)
    for (let j = 0; j < b; j++)
      for (let l = 0; l < c; l++) {
        const base = i * sa + j * sb + l * sc;
        for (let m = 0; m < d; m++) out[k++] = values[base + m * sd]!;
      }
  return out;
}

/** The inverse permutation. */
const inverse = (perm: readonly number[]): number[] => perm.map((_, i) => perm.indexOf(i));

/** Keys that never matter: BN's batch counter (PyTorch's inference does not read it), and the mapping's own. */
export function ignoredKey(key: string, mapping: TorchMapping): boolean {
  return key.endsWith('.num_batches_tracked') || (mapping.ignoreKey?.(key) ?? false);
}

export interface KeyMismatch {
  missing: string[];
  unexpected: string[];
  wrongShape: string[];
}

/** Strict comparison (as load_state_dict(strict=True)): keys the model needs vs keys the file has, and shapes. */
export function compareKeys(specs: readonly KeySpec[], shapes: ReadonlyMap<string, readonly number[]>, mapping: TorchMapping): KeyMismatch {
  const want = new Map(specs.map((s) => [s.key, s.shape]));
  const missing = specs.filter((s) => !shapes.has(s.key)).map((s) => s.key);
  const unexpected = [...shapes.keys()].filter((k) => !want.has(k) && !ignoredKey(k, mapping));
  const wrongShape: string[] = [];
  for (const s of specs) {
    const got = shapes.get(s.key);
    // A 0-d and a 1-element tensor are the same thing to PyTorch's copy_, but not here: be strict.
    if (got && (got.length !== s.shape.length || got.some((d, i) => d !== s.shape[i]))) {
      wrongShape.push(`${s.key} [${got.join(',')}] (expected [${s.shape.join(',')}])`);
    }
  }
  return { missing, unexpected, wrongShape };
}

export function describeMismatch(m: KeyMismatch, n = 3): string | null {
  const part = (label: string, xs: string[]): string | null =>
    xs.length === 0 ? null : `${xs.length} ${label} (${xs.slice(0, n).join(', ')}${xs.length > n ? ', ...' : ''})`;
  const parts = [part('missing', m.missing), part('unexpected', m.unexpected), part('wrongly shaped', m.wrongShape)].filter((x) => x !== null);
  return parts.length === 0 ? null : parts.join('; ');
}

/** Writes the state_dict into the model's variables (keys already checked with compareKeys). */
export function writeStateDict(specs: readonly KeySpec[], tensors: ReadonlyMap<string, TorchTensor>): void {
  for (const s of specs) {
    const t = tensors.get(s.key)!;
    // PyTorch layout → tfjs layout: the inverse of the tfjs → PyTorch permutation, applied to the PyTorch data
    // viewed with the permuted tfjs shape (for a depthwise kernel [C·m, 1, kh, kw] is viewed as [C, m, kh, kw]).
    const torchShape = s.perm.map((p) => s.variable.shape[p]!);
    const values = permute(t.read(), torchShape, inverse(s.perm));
    tf.tidy(() => {
      s.variable.write(tf.tensor(values, s.variable.shape as number[], 'float32'));
    });
  }
}

/** The model's weights as PyTorch tensors (official keys, PyTorch layout), plus num_batches_tracked for each BN. */
export function readStateDict(specs: readonly KeySpec[]): OutTensor[] {
  const out: OutTensor[] = [];
  for (const s of specs) {
    const values = s.variable.read().dataSync() as Float32Array;
    const tfShape = s.variable.shape as number[];
    const data = permute(values, tfShape, s.perm);
    out.push({ name: s.key, dtype: 'float32', shape: s.shape, data: data === values ? Float32Array.from(values) : data });
    if (s.key.endsWith('.running_var')) {
      // PyTorch's BatchNorm2d has this buffer; writing it keeps load_state_dict(strict=True) happy on any version.
      out.push({ name: s.key.replace(/running_var$/, 'num_batches_tracked'), dtype: 'int64', shape: [], data: new BigInt64Array(1) });
    }
  }
  return out;
}
