/**
 * The default mapping (layer name = PyTorch module path) and the layout of each layer class, checked element by
 * element against PyTorch's conventions written out by hand: Conv2d weight [O, I, kh, kw], depthwise (groups = C)
 * weight [C·m, 1, kh, kw] with output channel c·m + j reading input channel c, Linear weight [out, in], BN buffers.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { DEFAULT_MAPPING, exportModel, importIntoModel, mappingFor, readStateDictFile } from '../../src/interop/index.js';
import { tempDir } from '../eval/fixture.js';
import { noLeak, rng } from '../helpers.js';

/** A model in the shared convention: tfjs layers named after the PyTorch module paths (as mdistiller's zoo). */
function moduleNamedModel(): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 3] });
  let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', useBias: true, name: 'features.0' }).apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ epsilon: 1e-5, name: 'features.1' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', useBias: true, name: 'features.3' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const y = tf.layers.dense({ units: 5, name: 'classifier' }).apply(x) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: y });
  const r = rng(11);
  for (const v of model.weights) {
    tf.tidy(() => {
      v.write(
        tf.tensor(
          Float32Array.from({ length: v.shape.reduce<number>((a, b) => a * b!, 1) }, () => r() + 0.1),
          v.shape as number[],
        ),
      );
    });
  }
  return model;
}

test('default mapping: official PyTorch key names and layouts, element by element, and a bit-identical round trip', async () => {
  const dir = tempDir('ikl-interop-');
  const model = moduleNamedModel();
  assert.equal(mappingFor('some-new-arch'), DEFAULT_MAPPING);
  const file = join(dir, 'm.safetensors');
  await exportModel(model, 'some-new-arch', file);
  const sd = (await readStateDictFile(file)).tensors;
  assert.deepEqual([...sd.keys()].sort(), [
    'classifier.bias',
    'classifier.weight',
    'features.0.bias',
    'features.0.weight',
    'features.1.bias',
    'features.1.num_batches_tracked',
    'features.1.running_mean',
    'features.1.running_var',
    'features.1.weight',
    'features.3.bias',
    'features.3.weight',
  ]);
  const w = (name: string): { v: Float32Array; s: number[] } => {
    const l = model.getLayer(name.split('/')[0]!);
    const v = l.weights.find((x) => x.originalName.endsWith(`/${name.split('/')[1]}`))!;
    return { v: v.read().dataSync() as Float32Array, s: v.shape as number[] };
  };
  // Conv2d: torch[o, i, y, x] = tf[y, x, i, o].
  const conv = sd.get('features.0.weight')!;
  assert.deepEqual(conv.shape, [4, 3, 3, 3]);
  const k = w('features.0/kernel');
  const cv = conv.read();
  for (const [o, i, y, x] of [
    [0, 0, 0, 0],
    [3, 2, 1, 0],
    [1, 2, 2, 1],
  ] as const) {
    assert.equal(cv[((o * 3 + i) * 3 + y) * 3 + x], k.v[((y * 3 + x) * 3 + i) * 4 + o]);
  }
  // Depthwise, C = 4, m = 2: torch[c·2 + j, 0, y, x] = tf[y, x, c, j].
  const dw = sd.get('features.3.weight')!;
  assert.deepEqual(dw.shape, [8, 1, 3, 3]);
  const d = w('features.3/depthwise_kernel');
  assert.deepEqual(d.s, [3, 3, 4, 2]);
  const dv = dw.read();
  for (const [c, j, y, x] of [
    [0, 1, 0, 2],
    [3, 0, 2, 1],
    [2, 1, 1, 1],
  ] as const) {
    assert.equal(dv[((c * 2 + j) * 3 + y) * 3 + x], d.v[((y * 3 + x) * 4 + c) * 2 + j]);
  }
  // Linear: torch[out, in] = tf[in, out].
  const fc = sd.get('classifier.weight')!;
  assert.deepEqual(fc.shape, [5, 8]);
  const f = w('classifier/kernel');
  assert.equal(fc.read()[3 * 8 + 6], f.v[6 * 5 + 3]);
  // BN: weight/bias/running_mean/running_var = gamma/beta/moving_mean/moving_variance.
  for (const [torch, tfName] of [
    ['weight', 'gamma'],
    ['bias', 'beta'],
    ['running_mean', 'moving_mean'],
    ['running_var', 'moving_variance'],
  ]) {
    assert.deepEqual(sd.get(`features.1.${torch}`)!.read(), w(`features.1/${tfName}`).v);
  }
  // Back in: bit-identical, and the same outputs.
  const back = moduleNamedModel();
  back.weights.forEach((v) => tf.tidy(() => void v.write(tf.zerosLike(v.read()))));
  importIntoModel(back, DEFAULT_MAPPING, { tensors: sd, container: '', prefix: '' }, file, 'x');
  model.weights.forEach((v, i) => assert.deepEqual(back.weights[i]!.read().dataSync(), v.read().dataSync(), v.originalName));
  await noLeak(() => {
    const x = tf.randomUniform([2, 8, 8, 3]);
    const a = model.predict(x) as tf.Tensor;
    const b = back.predict(x) as tf.Tensor;
    assert.deepEqual(a.dataSync(), b.dataSync());
    tf.dispose([x, a, b]);
  });
  model.dispose();
  back.dispose();
});
