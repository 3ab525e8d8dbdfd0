/**
 * The part of tfjs-node's binding that ikl-at's patch adds (scripts/native/tfjs-node-4.22.0.patch, applied by
 * `npm run setup:native`): every call into it goes through this module. On other backends, or with a binding
 * built without the patch, `patchedBinding()` is undefined and callers use their fallback.
 *
 * What the patch adds to `binding`:
 * - `IKL_PATCH`: the patch version (1).
 * - `executeOp(name, attrs, inputIds, numOutputs, device?)`: an array `value` of a TF_ATTR_STRING attribute is a
 *   list(string) (`fused_ops`), of a TF_ATTR_TYPE attribute a list(type) (`TArgs`); the optional fifth argument
 *   places the op on a device.
 * - `enableCollectiveOps(serverDef: Uint8Array) → device name`, `abortCollectiveOps(message) → boolean`,
 *   `checkPeerHealth(task, timeoutMs)`, `listDevices() → string[]`, `deviceName() → string`,
 *   `copyToDevice(tensorId, device) → {id, shape, dtype}`.
 */
import * as tf from '@tensorflow/tfjs';
import { IKL_PATCH } from '../kernels.js';

/** One attribute of an op, as tfjs-node's binding takes it. */
export interface OpAttr {
  name: string;
  type: number;
  value: unknown;
}

/** Output metadata of executeOp. */
export interface TensorMeta {
  id: number;
  shape: number[];
  dtype: number;
}

/** The binding with ikl-at's patch. */
export interface PatchedBinding extends Record<string, unknown> {
  IKL_PATCH: number;
  TF_FLOAT: number;
  TF_INT32: number;
  TF_ATTR_STRING: number;
  TF_ATTR_INT: number;
  TF_ATTR_FLOAT: number;
  TF_ATTR_BOOL: number;
  TF_ATTR_TYPE: number;
  executeOp(name: string, attrs: OpAttr[], inputIds: number[], numOutputs: number, device?: string): TensorMeta[];
  enableCollectiveOps(serverDef: Uint8Array): string;
  abortCollectiveOps(message: string): boolean;
  checkPeerHealth(task: string, timeoutMs: number): boolean;
  listDevices(): string[];
  deviceName(): string;
  copyToDevice(tensorId: number, device: string): TensorMeta;
}

/** The part of tfjs-node's NodeJSKernelBackend used here. */
interface NodeBackend {
  binding: PatchedBinding;
  getInputTensorIds(tensors: tf.TensorInfo[]): number[];
  createOutputTensor(meta: TensorMeta): tf.Tensor;
  executeMultipleOutputs(name: string, attrs: OpAttr[], inputs: tf.TensorInfo[], numOutputs: number): tf.Tensor[];
}

export { IKL_PATCH };

function nodeBackend(): NodeBackend | undefined {
  if (tf.getBackend() !== 'tensorflow') return undefined;
  return tf.backend() as unknown as NodeBackend;
}

/** The patched binding, or undefined (another backend, or a binding built before the patch). */
export function patchedBinding(): PatchedBinding | undefined {
  const b = nodeBackend()?.binding;
  return b?.IKL_PATCH === IKL_PATCH ? b : undefined;
}

/** Why `patchedBinding()` is undefined, for one-line errors. */
export function whyUnpatched(): string {
  const b = nodeBackend();
  if (!b) return `the tfjs backend is '${tf.getBackend()}', not the native 'tensorflow' backend`;
  return `the native binding was built without ikl-at's patch (IKL_PATCH ${String(b.binding.IKL_PATCH)}, expected ${IKL_PATCH}): run \`npm run setup:native\``;
}

/**
 * Runs a TensorFlow op through the patched binding, optionally placed on `device`; the outputs are tfjs tensors
 * the engine tracks like any other. Throws when the binding is not patched.
 */
export function executeOp(name: string, attrs: OpAttr[], inputs: tf.Tensor[], numOutputs: number, device?: string): tf.Tensor[] {
  const b = nodeBackend();
  if (!b || b.binding.IKL_PATCH !== IKL_PATCH) throw new Error(`executeOp(${name}): ${whyUnpatched()}`);
  const metas = b.binding.executeOp(name, attrs, b.getInputTensorIds(inputs), numOutputs, device);
  // The backend's own path registers the outputs with the engine (makeTensorFromDataId) via createOutputTensor.
  return metas.map((m) => b.createOutputTensor(m));
}
