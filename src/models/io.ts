/**
 * Save/load in the tfjs layers format (model.json + weights.bin) with node:fs, so it works on every backend
 * (the `file://` handler exists only with tfjs-node). The files are exactly what `tf.loadLayersModel` expects in a
 * browser: all weights, including BN running statistics, are in weights.bin.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { copyWeights } from './weights.js';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

/** Bytes per element of the dtypes the model and checkpoint files hold. */
export const DTYPE_BYTES = { float32: 4, int32: 4, bool: 1 } as const;

function toArrayBuffer(data: tf.io.WeightData): ArrayBuffer {
  return Array.isArray(data) ? tf.io.CompositeArrayBuffer.join(data) : data;
}

/** Saves the model as `dir/model.json` + `dir/weights.bin` (directory created if needed). */
export async function saveModel(model: tf.LayersModel, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      if (artifacts.weightData == null || artifacts.weightSpecs == null) throw new Error('saveModel: tfjs produced no weights');
      const weights = new Uint8Array(toArrayBuffer(artifacts.weightData));
      const modelJson: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [`./${WEIGHTS_BIN}`], weights: artifacts.weightSpecs }],
      };
      // Weights first: model.json is the file a loader looks for, so it appears only when both are complete.
      await writeFileAtomic(join(dir, WEIGHTS_BIN), weights);
      await writeFileAtomic(join(dir, MODEL_JSON), JSON.stringify(modelJson));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
}

function expectedBytes(specs: readonly tf.io.WeightsManifestEntry[]): number | undefined {
  let total = 0;
  for (const s of specs) {
    const per = (DTYPE_BYTES as Record<string, number>)[s.dtype];
    if (per === undefined || s.quantization) return undefined; // quantised or exotic: let tfjs validate
    total += s.shape.reduce((a, b) => a * b, 1) * per;
  }
  return total;
}

/** Loads a model saved by saveModel (or any tfjs layers model.json with weight files beside it). */
export async function loadModel(dir: string): Promise<tf.LayersModel> {
  const jsonPath = join(dir, MODEL_JSON);
  let text: string;
  try {
    text = await readFile(jsonPath, 'utf8');
  } catch (e) {
    throw new InputError(`${jsonPath}: cannot read the model file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let json: Partial<tf.io.ModelJSON>;
  try {
    json = JSON.parse(text) as Partial<tf.io.ModelJSON>;
  } catch (e) {
    throw new InputError(`${jsonPath}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof json.modelTopology !== 'object' || json.modelTopology === null || !Array.isArray(json.weightsManifest)) {
    throw new InputError(`${jsonPath}: expected a tfjs layers model with 'modelTopology' and 'weightsManifest'`);
  }
  const specs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  for (const group of json.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) {
      const rel = p.replace(/^\.\//, '');
      if (rel.includes('/') || rel.includes('\\') || rel === '..' || rel === '') {
        throw new InputError(`${jsonPath}: weightsManifest path '${p}' must be a file name beside model.json`);
      }
      try {
        parts.push(await readFile(join(dir, rel)));
      } catch (e) {
        throw new InputError(`${join(dir, rel)}: cannot read the weights file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
    }
  }
  const total = parts.reduce((a, b) => a + b.byteLength, 0);
  const want = expectedBytes(specs);
  if (want !== undefined && want !== total) {
    throw new InputError(`${join(dir, WEIGHTS_BIN)}: weights hold ${total} bytes, model.json describes ${want}`);
  }
  const weightData = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    weightData.set(part, offset);
    offset += part.byteLength;
  }
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: specs,
      weightData: weightData.buffer,
      format: json.format,
      generatedBy: json.generatedBy,
      convertedBy: json.convertedBy,
    }),
  );
}

/**
 * An independent copy of a model (same architecture, same weights and running statistics, own variables), e.g. the
 * AWP proxy or a weight-average model.
 */
export async function cloneModel(model: tf.LayersModel): Promise<tf.LayersModel> {
  const copy = await tf.models.modelFromJSON({ modelTopology: model.toJSON(null, false) as tf.io.ModelJSON['modelTopology'] });
  copyWeights(model, copy);
  return copy;
}
