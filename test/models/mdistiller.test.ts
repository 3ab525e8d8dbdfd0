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
import { heavy, noLeak, rng } from '../helpers.js';
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
  'InputLayer',
  'Conv2D',
  'DepthwiseConv2D',
  'ZeroPadding2D',
  'BatchNormalization',
  'Activation',
  'Add',
  'Concatenate',
  'GlobalAveragePooling2D',
  'MaxPooling2D',
  'AveragePooling2D',
  'Reshape',
  'Permute',
  'Cropping2D',
  'Dense',
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
      assert.deepEqual(
        loaded.layers.map((l) => l.name),
        model.layers.map((l) => l.name),
      );
      tf.dispose([x, a, b]);
      model.dispose();
      loaded.dispose();
    });
  }
});

test('mdistiller zoo: PyTorch BN settings; every trainable weight gets a gradient (split/shuffle/crop layers included)', heavy, async () => {
  for (const arch of ['ShuffleV1', 'ShuffleV2', 'MobileNetV2', 'vgg8'] as const) {
    await noLeak(() => {
      const model = createModel({ arch, numClasses: 10, seed: 1 });
      for (const layer of model.layers.filter((l) => l.getClassName() === 'BatchNormalization')) {
        const config = layer.getConfig();
        assert.equal(config.momentum, 0.9, `${arch}/${layer.name}`);
        assert.equal(config.epsilon, 1e-5, `${arch}/${layer.name}`);
      }
      const x = tf.tensor4d(Float32Array.from({ length: 2 * 32 * 32 * 3 }, rng(5)), [2, 32, 32, 3]);
      const labels = tf.tidy(() => tf.oneHot(tf.tensor1d([1, 7], 'int32'), 10));
      const { value, grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(labels, forward(model, x, { training: true })) as tf.Scalar,
        model.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val),
      );
      const dead = Object.entries(grads)
        .filter(([, g]) => tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]!) === 0)
        .map(([n]) => n);
      assert.deepEqual(dead, [], `${arch}: weights without gradient`);
      assert.equal(Object.keys(grads).length, model.trainableWeights.length);
      tf.dispose([x, labels, value, ...Object.values(grads)]);
      model.dispose();
    });
  }
});

test('mdistiller zoo: initialisation per family as mdistiller (VGG/MobileNetV2 linear N(0, 0.01²) and zero biases, depthwise fan-out)', async () => {
  const std = (v: Float32Array) => Math.sqrt(v.reduce((a, b) => a + b * b, 0) / v.length);
  const weight = (model: tf.LayersModel, layer: string, role: string) =>
    model
      .getLayer(layer)
      .weights.find((w) => w.originalName.endsWith(`/${role}`))!
      .read()
      .dataSync() as Float32Array;
  await noLeak(() => {
    const vgg = createModel({ arch: 'vgg8', numClasses: 100, seed: 2 });
    assert.ok(Math.abs(std(weight(vgg, 'classifier', 'kernel')) - 0.01) < 5e-4);
    assert.ok(
      weight(vgg, 'block0.0', 'bias').every((b) => b === 0),
      'VGG conv bias zeroed',
    );
    assert.ok(Math.abs(std(weight(vgg, 'block3.0', 'kernel')) - Math.sqrt(2 / (9 * 512))) < 1e-3);
    vgg.dispose();
    const mv2 = createModel({ arch: 'MobileNetV2', numClasses: 100, seed: 2 });
    // blocks.2.0.conv.3: depthwise 3×3 over 12·6 = 72 channels; mdistiller's n = k·k·out_channels.
    assert.ok(Math.abs(std(weight(mv2, 'blocks.2.0.conv.3', 'depthwise_kernel')) / Math.sqrt(2 / (9 * 72)) - 1) < 0.1);
    mv2.dispose();
    const sv2 = createModel({ arch: 'ShuffleV2', numClasses: 100, seed: 2 });
    // PyTorch default for a depthwise 3×3: U(±1/sqrt(9)).
    const dw = weight(sv2, 'layer1.0.conv1', 'depthwise_kernel');
    assert.ok(Math.max(...dw.map(Math.abs)) <= 1 / 3 && Math.max(...dw.map(Math.abs)) > 0.3);
    sv2.dispose();
  });
});
