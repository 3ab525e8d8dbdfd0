/**
 * `ikl-train --init-from` / `model.initFrom`: start from the weights of a checkpoint directory or a PyTorch /
 * safetensors file. The source must be the config's architecture and class count (strict key and shape check);
 * only weights and BN statistics are taken, no optimizer state or epoch counter.
 */
import type * as tf from '@tensorflow/tfjs';
import { readCheckpoint } from '../checkpoint/index.js';
import { InputError } from '../errors.js';
import type { Logger } from '../log.js';
import { NORMALIZATION_LAYER, normalizationStats } from '../models/archs.js';
import { isRobustBenchRef, loadRobustBench, type RobustBenchEntry, type RobustBenchFileOptions } from './robustbench.js';
import { importIntoModel, isWeightFile, mappingFor, modelStateDict, readStateDictFile, type TorchTensor } from './index.js';

/** Overwrites every weight of `model` (a fresh `arch` model) with those of `source`; returns a description. */
export async function initModelFrom(
  model: tf.LayersModel,
  arch: string,
  source: string,
  opts: { dataset?: string; logger?: Logger; robustbench?: RobustBenchFileOptions & { table?: readonly RobustBenchEntry[] } } = {},
): Promise<{ source: string; sha256?: string; kind: 'checkpoint' | 'weights' | 'robustbench' }> {
  const mapping = mappingFor(arch);
  if (isRobustBenchRef(source)) return initFromRobustBench(model, arch, source, opts);
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

/**
 * `robustbench:<name>` (the config's dataset tells CIFAR-10 and CIFAR-100 entries apart): the entry must be the
 * config's architecture and class count, with the input statistics the config's model applies (none for the
 * ReLU families, the dataset's for the Swish WRN): fine-tuning a model with other statistics would silently
 * change what its first layer sees.
 */
async function initFromRobustBench(
  model: tf.LayersModel,
  arch: string,
  source: string,
  opts: { dataset?: string; logger?: Logger; robustbench?: RobustBenchFileOptions & { table?: readonly RobustBenchEntry[] } },
): Promise<{ source: string; sha256: string; kind: 'robustbench' }> {
  const dataset = opts.dataset === 'cifar10' || opts.dataset === 'cifar100' ? opts.dataset : undefined;
  const m = await loadRobustBench(source, { ...opts.robustbench, dataset, source: 'model.initFrom', logger: opts.logger });
  try {
    const numClasses = model.outputs[0]?.shape.at(-1) as number;
    const what = `model.initFrom ${source}`;
    if (m.arch !== arch) throw new InputError(`${what}: is a ${m.arch} (${m.entry.robustbench}), the config's model.arch is ${arch}`);
    if (m.numClasses !== numClasses) throw new InputError(`${what}: has ${m.numClasses} classes, the model ${numClasses}`);
    const ours = model.layers.some((l) => l.name === NORMALIZATION_LAYER) ? normalizationStats(numClasses) : null;
    const theirs = m.entry.normalization;
    const same = (a: readonly number[], b: readonly number[]): boolean => a.every((v, i) => Math.abs(v - b[i]!) < 1e-6);
    if ((ours === null) !== (theirs === null) || (ours && theirs && !(same(ours.mean, theirs.mean) && same(ours.std, theirs.std)))) {
      const show = (n: { mean: readonly number[] } | null): string => (n ? `mean [${n.mean.join(', ')}]` : 'none');
      throw new InputError(
        `${what}: normalises its input with ${show(theirs)}, the config's ${arch} with ${show(ours)}; evaluate it with ikl-eval --model instead`,
      );
    }
    const tensors = new Map<string, TorchTensor>(
      modelStateDict(m.model, arch)
        .filter((t) => t.dtype === 'float32')
        .map((t) => [t.name, { kind: 'torch-tensor', dtype: t.dtype, shape: t.shape, read: () => Float32Array.from(t.data as Float32Array) }]),
    );
    importIntoModel(model, mappingFor(arch), { tensors, container: '', prefix: '' }, source, `model.arch ${arch}`);
    return { source, sha256: m.source.sha256, kind: 'robustbench' };
  } finally {
    m.model.dispose();
  }
}
