/**
 * `ikl-train --init-from` / `model.initFrom`: start from the weights of a checkpoint directory or a PyTorch /
 * safetensors file. The source must be the config's architecture and class count (strict key and shape check);
 * only weights and BN statistics are taken, no optimizer state or epoch counter.
 */
import type * as tf from '@tensorflow/tfjs';
import { readCheckpoint } from '../checkpoint/index.js';
import { InputError } from '../errors.js';
import { importIntoModel, isWeightFile, mappingFor, modelStateDict, readStateDictFile, type TorchTensor } from './index.js';

/** Overwrites every weight of `model` (a fresh `arch` model) with those of `source`; returns a description. */
export async function initModelFrom(
  model: tf.LayersModel,
  arch: string,
  source: string,
): Promise<{ source: string; sha256?: string; kind: 'checkpoint' | 'weights' }> {
  const mapping = mappingFor(arch);
  if (await isWeightFile(source)) {
    const flat = await readStateDictFile(source);
    importIntoModel(model, mapping, flat, source, `model.arch ${arch} with ${String(model.outputs[0]?.shape.at(-1))} classes`);
    return { source, sha256: flat.source.sha256, kind: 'weights' };
  }
  const ckpt = await readCheckpoint(source);
  try {
    if (ckpt.meta.arch !== arch) throw new InputError(`model.initFrom ${source}: is a ${ckpt.meta.arch}, the config's model.arch is ${arch}`);
    // Through the PyTorch key space: checkpoints of any layer-name generation map onto the current model.
    const tensors = new Map<string, TorchTensor>(
      modelStateDict(ckpt.model, arch)
        .filter((t) => t.dtype === 'float32')
        .map((t) => [t.name, { kind: 'torch-tensor', dtype: t.dtype, shape: t.shape, read: () => Float32Array.from(t.data as Float32Array) }]),
    );
    importIntoModel(model, mapping, { tensors, container: '', prefix: '' }, source, `model.arch ${arch}`);
    return { source, kind: 'checkpoint' };
  } finally {
    ckpt.model.dispose();
  }
}
