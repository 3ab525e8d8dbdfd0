/**
 * Test-side loading of a PyTorch state_dict into the mdistiller zoo by layer name (the convention of
 * src/models/mdistiller.ts), and the seeded state_dict values of scripts/fixtures/torch_kd.py (`formula_tensor`),
 * reproduced bit for bit so that no weight file needs committing. The project's importer (src/interop) is the
 * real loader; this one exists to check the architectures against PyTorch's logits.
 */
import * as tf from '@tensorflow/tfjs';
import { rng } from '../helpers.js';

function fnv1a(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** formula_tensor of torch_kd.py: the value of state_dict entry `name` (float32, row-major PyTorch layout). */
export function formulaTensor(name: string, shape: readonly number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const next = rng(fnv1a(name));
  const leaf = name.slice(name.lastIndexOf('.') + 1);
  const out = new Float32Array(n);
  const bound = Math.sqrt(6 / (n / shape[0]!));
  for (let i = 0; i < n; i++) {
    const u = next();
    if (leaf === 'running_var' || (leaf === 'weight' && shape.length === 1)) out[i] = 0.5 + u;
    else if (leaf === 'bias' || leaf === 'running_mean') out[i] = 0.2 * (u - 0.5);
    else out[i] = (2 * u - 1) * bound;
  }
  return out;
}

const BN_ROLE: Record<string, string> = { weight: 'gamma', bias: 'beta', running_mean: 'moving_mean', running_var: 'moving_variance' };

/**
 * Writes every entry of a PyTorch state_dict into the model: module path = layer name, OIHW → HWIO for
 * convolutions, [C,1,kh,kw] → [kh,kw,C,1] for depthwise ones, split along O for the `.g<k>` layers of a grouped
 * convolution, [out,in] → [in,out] for linear layers. Throws on an entry or a model weight left unmatched.
 */
export function loadStateDict(model: tf.LayersModel, state: Map<string, { shape: number[]; values: Float32Array }>): void {
  const written = new Set<tf.LayerVariable>();
  const layerNames = new Set(model.layers.map((l) => l.name));
  const write = (layerName: string, role: string, value: tf.Tensor) => {
    const layer = model.getLayer(layerName);
    const v = layer.weights.find((w) => w.originalName.endsWith(`/${role}`));
    if (!v) throw new Error(`${layerName} has no weight ${role}`);
    if (v.shape.join() !== value.shape.join()) throw new Error(`${layerName}/${role}: shape [${v.shape}] vs [${value.shape}]`);
    v.write(value);
    written.add(v);
  };
  for (const [key, { shape, values }] of state) {
    const dot = key.lastIndexOf('.');
    const path = key.slice(0, dot);
    const leaf = key.slice(dot + 1);
    tf.tidy(() => {
      const t = tf.tensor(values, shape, 'float32');
      if (layerNames.has(path) && model.getLayer(path).getClassName() === 'BatchNormalization') {
        write(path, BN_ROLE[leaf]!, t);
      } else if (shape.length === 4) {
        const cls = layerNames.has(path) ? model.getLayer(path).getClassName() : 'grouped';
        if (cls === 'DepthwiseConv2D') write(path, 'depthwise_kernel', tf.transpose(t, [2, 3, 0, 1]));
        else if (cls === 'Conv2D') write(path, 'kernel', tf.transpose(t, [2, 3, 1, 0]));
        else {
          const groups = [...layerNames].filter((n) => n.startsWith(`${path}.g`) && /^\d+$/.test(n.slice(path.length + 2))).length;
          if (groups === 0) throw new Error(`no layer for ${key}`);
          tf.split(t, groups, 0).forEach((part, k) => write(`${path}.g${k}`, 'kernel', tf.transpose(part, [2, 3, 1, 0])));
        }
      } else if (shape.length === 2) {
        write(path, 'kernel', tf.transpose(t));
      } else if (leaf === 'bias') {
        write(path, 'bias', t);
      } else {
        throw new Error(`unmatched state_dict entry ${key}`);
      }
    });
  }
  const missing = model.weights.filter((w) => !written.has(w) && !w.originalName.startsWith('input_normalization/'));
  if (missing.length > 0) throw new Error(`model weights not in the state_dict: ${missing.map((w) => w.originalName).join(', ')}`);
}
