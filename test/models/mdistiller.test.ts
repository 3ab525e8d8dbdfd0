/**
 * The mdistiller CIFAR-100 zoo against mdistiller's own PyTorch models (fixtures of scripts/fixtures/torch_kd.py):
 * trainable parameter counts of all 15 architectures, and logits of the small ones with the same seeded weights
 * loaded by PyTorch module path (the naming convention of src/models/mdistiller.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { noLeak, rng } from '../helpers.js';
import { MDISTILLER_ARCHS, countParams, createModel, forward, type MdistillerArch } from '../../src/models/index.js';
import { formulaTensor, loadStateDict } from './mdistiller-weights.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/kd/', import.meta.url));
const params = JSON.parse(readFileSync(`${FIXTURES}params.json`, 'utf8')) as { numClasses: number; params: Record<string, number> };
const logits = JSON.parse(readFileSync(`${FIXTURES}logits.json`, 'utf8')) as {
  numClasses: number;
  inputSeed: number;
  batch: number;
  models: Record<string, { stateDict: Record<string, number[]>; logits: number[][] }>;
};

/** Layer classes that ship with tfjs-layers (a browser loads these models without this package). */
const BUILT_IN = new Set([
  'InputLayer', 'Conv2D', 'DepthwiseConv2D', 'ZeroPadding2D', 'BatchNormalization', 'Activation', 'Add', 'Concatenate',
  'GlobalAveragePooling2D', 'MaxPooling2D', 'AveragePooling2D', 'Reshape', 'Permute', 'Cropping2D', 'Dense',
]);

test('mdistiller zoo: trainable parameter counts equal PyTorch (mdistiller models/cifar, 100 classes)', async () => {
  const rows: string[] = [];
  const wrong: string[] = [];
  for (const arch of MDISTILLER_ARCHS) {
    await noLeak(() => {
      const model = createModel({ arch, numClasses: params.numClasses, seed: 0 });
      const ours = countParams(model);
      const torch = params.params[arch];
      rows.push(`${arch.padEnd(12)} ${String(ours).padStart(10)} ${String(torch).padStart(10)}`);
      if (ours !== torch) wrong.push(arch);
      for (const layer of model.layers) assert.ok(BUILT_IN.has(layer.getClassName()), `${arch}: ${layer.getClassName()} is not built in`);
      model.dispose();
    });
  }
  console.log(`arch              ours    PyTorch\n${rows.join('\n')}`);
  assert.deepEqual(wrong, [], `parameter counts differ: ${wrong.join(', ')}`);
});

for (const arch of Object.keys(logits.models) as MdistillerArch[]) {
  test(`${arch}: logits equal PyTorch's with the same weights loaded by module path`, async () => {
    const ref = logits.models[arch]!;
    await noLeak(() => {
      const model = createModel({ arch, numClasses: logits.numClasses, seed: 0 });
      const state = new Map(Object.entries(ref.stateDict).map(([k, shape]) => [k, { shape, values: formulaTensor(k, shape) }]));
      loadStateDict(model, state);
      const next = rng(logits.inputSeed);
      const x = tf.tensor4d(Float32Array.from({ length: logits.batch * 32 * 32 * 3 }, next), [logits.batch, 32, 32, 3]);
      const y = forward(model, x, { training: false });
      const got = Array.from(y.dataSync());
      const expected = ref.logits.flat();
      const scale = Math.max(...expected.map(Math.abs));
      const err = Math.max(...got.map((v, i) => Math.abs(v - expected[i]!))) / scale;
      console.log(`${arch}: max |ours − PyTorch| / max |logit| = ${err.toExponential(2)} (max |logit| ${scale.toPrecision(3)})`);
      assert.ok(err < 1e-4, `${arch}: relative logit error ${err}`);
      tf.dispose([x, y]);
      model.dispose();
    });
  });
}

test('ShuffleV1 and ShuffleV2 (reshape/permute/crop layers, dotted names) survive a model.json round trip in plain tfjs', async () => {
  for (const arch of ['ShuffleV1', 'ShuffleV2'] as const) {
    await noLeak(async () => {
      const model = createModel({ arch, numClasses: 10, seed: 4 });
      let artifacts: tf.io.ModelArtifacts | undefined;
      await model.save(tf.io.withSaveHandler(async (a) => ((artifacts = a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })));
      const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts!));
      const x = tf.tensor4d(Float32Array.from({ length: 2 * 32 * 32 * 3 }, rng(3)), [2, 32, 32, 3]);
      const a = forward(model, x, { training: false });
      const b = forward(loaded, x, { training: false });
      assert.deepEqual(Array.from(b.dataSync()), Array.from(a.dataSync()), `${arch}: logits after the round trip`);
      assert.deepEqual(loaded.layers.map((l) => l.name), model.layers.map((l) => l.name));
      tf.dispose([x, a, b]);
      model.dispose();
      loaded.dispose();
    });
  }
});
