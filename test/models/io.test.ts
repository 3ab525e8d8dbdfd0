import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { assertClose, heavy, noLeak, randomImages } from '../helpers.js';
import { InputError } from '../../src/errors.js';
import { createModel, forward, loadModel, modelWeights, saveModel, type ModelArch } from '../../src/models/index.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** Layer classes that ship with tfjs-layers; anything else would need registration before loading. */
const BUILT_IN = new Set([
  'InputLayer',
  'Conv2D',
  'DepthwiseConv2D',
  'ZeroPadding2D',
  'BatchNormalization',
  'Activation',
  'Add',
  'GlobalAveragePooling2D',
  'Dense',
]);

const bits = (t: tf.Tensor): Uint32Array => new Uint32Array(Float32Array.from(t.dataSync()).buffer);
const sameBits = (a: Uint32Array, b: Uint32Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

/** Loads dir with nothing but @tensorflow/tfjs (cpu backend, no import of this package), as a browser would. */
function logitsInPlainTfjs(dir: string, images: number[], shape: number[]): number[] {
  const script = `
    import * as tf from '@tensorflow/tfjs';
    import { readFileSync } from 'node:fs';
    await tf.setBackend('cpu');
    const json = JSON.parse(readFileSync(process.argv[1] + '/model.json', 'utf8'));
    const bin = readFileSync(process.argv[1] + '/weights.bin');
    const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest[0].weights, weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength) }));
    const x = tf.tensor4d(JSON.parse(process.argv[2]), JSON.parse(process.argv[3]));
    process.stdout.write(JSON.stringify(Array.from(model.predict(x).dataSync())));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, dir, JSON.stringify(images), JSON.stringify(shape)], {
    cwd: repoRoot,
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  return JSON.parse(out) as number[];
}

async function roundTrip(arch: ModelArch, numClasses: number, plainCheck: boolean): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), `ikl-models-${arch}-`));
  try {
    const model = createModel({ arch, numClasses, seed: 5 });
    const x = randomImages(2, 9);
    // One training pass so the running statistics are no longer their initial 0/1: they must survive the trip.
    tf.dispose(forward(model, x, { training: true }));
    await saveModel(model, dir);

    const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
    assert.equal(json.format, 'layers-model');
    assert.deepEqual(json.weightsManifest[0].paths, ['./weights.bin']);
    const classes = new Set<string>(json.modelTopology.config.layers.map((l: { class_name: string }) => l.class_name));
    for (const c of classes) assert.ok(BUILT_IN.has(c), `${arch}: layer class ${c} is not a tfjs built-in`);
    const totalWeights = model.weights.reduce((s, v) => s + v.shape.reduce<number>((p, d) => p * (d ?? 1), 1), 0);
    assert.equal((await stat(join(dir, 'weights.bin'))).size, 4 * totalWeights, 'weights.bin must hold every weight incl. running stats');

    const loaded = await loadModel(dir);
    await noLeak(() => {
      const original = modelWeights(model);
      const restored = new Map(modelWeights(loaded).map((w) => [w.name, w]));
      assert.equal(restored.size, original.length);
      for (const w of original) {
        const r = restored.get(w.name);
        assert.ok(r, `${w.name} missing after load`);
        assert.equal(r.trainable, w.trainable, `${w.name} trainable flag`);
        assert.ok(sameBits(bits(r.variable.read()), bits(w.variable.read())), `${w.name} differs after load`);
      }
      const y0 = forward(model, x, { training: false });
      const y1 = forward(loaded, x, { training: false });
      assert.ok(sameBits(bits(y0), bits(y1)), 'inference logits differ after the round trip');
      if (plainCheck) {
        const plain = logitsInPlainTfjs(dir, Array.from(x.dataSync()), x.shape);
        assertClose(plain, y0.dataSync(), 1e-4, 'logits of plain tfjs (cpu) vs ours');
      }
      tf.dispose([y0, y1]);
    });
    x.dispose();
    model.dispose();
    loaded.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('small CNN: save/load round trip is exact, and plain tfjs (no custom layers) loads it', async () => {
  await roundTrip('small-cnn', 10, true);
});

test('PreActResNet-18: save/load round trip is exact', heavy, async () => {
  await roundTrip('preact-resnet-18', 10, false);
});

test('every architecture serialises to built-in layer classes and deserialises in plain tfjs', heavy, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ikl-models-topologies-'));
  try {
    const archs: ModelArch[] = ['wrn-34-10', 'wrn-28-10', 'wrn-28-10-swish', 'preact-resnet-18', 'resnet-18', 'small-cnn'];
    const expected: number[] = [];
    for (const arch of archs) {
      const model = createModel({ arch, numClasses: 10, seed: 0 });
      await writeFile(join(dir, `${arch}.json`), JSON.stringify(model.toJSON(null, false)));
      expected.push(model.trainableWeights.length, model.weights.length);
      model.dispose();
    }
    // Rebuild each topology with nothing but @tensorflow/tfjs and report its weight lists.
    const script = `
      import * as tf from '@tensorflow/tfjs';
      import { readFileSync } from 'node:fs';
      await tf.setBackend('cpu');
      const out = [];
      for (const arch of JSON.parse(process.argv[2])) {
        const m = await tf.models.modelFromJSON({ modelTopology: JSON.parse(readFileSync(process.argv[1] + '/' + arch + '.json', 'utf8')) });
        out.push(m.trainableWeights.length, m.weights.length);
        m.dispose();
      }
      process.stdout.write(JSON.stringify(out));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, dir, JSON.stringify(archs)], { cwd: repoRoot, encoding: 'utf8' });
    assert.deepEqual(JSON.parse(out), expected);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('loadModel reports missing, malformed and truncated files as InputError naming the file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ikl-models-bad-'));
  try {
    await assert.rejects(loadModel(join(dir, 'nothing')), (e: unknown) => e instanceof InputError && /model\.json: cannot read/.test(e.message));
    const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 1 });
    await saveModel(model, dir);
    model.dispose();
    await truncate(join(dir, 'weights.bin'), 100);
    await assert.rejects(loadModel(dir), (e: unknown) => e instanceof InputError && /weights\.bin: weights hold 100 bytes/.test(e.message));
    await writeFile(join(dir, 'model.json'), '{"modelTopology": ');
    await assert.rejects(loadModel(dir), (e: unknown) => e instanceof InputError && /model\.json: not valid JSON/.test(e.message));
    await writeFile(join(dir, 'model.json'), JSON.stringify({ modelTopology: {}, weightsManifest: [{ paths: ['../x.bin'], weights: [] }] }));
    await assert.rejects(loadModel(dir), (e: unknown) => e instanceof InputError && /must be a file name/.test(e.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
