import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { noLeak, rng } from '../helpers.js';
import {
  findResumableCheckpoint,
  listGenerations,
  readCheckpoint,
  verifyCheckpoint,
  writeCheckpoint,
  type CheckpointMeta,
} from '../../src/checkpoint/index.js';
import { configHash, resolveConfig } from '../../src/config/index.js';
import { InputError } from '../../src/errors.js';
import { createModel } from '../../src/models/index.js';

const root = mkdtempSync(join(tmpdir(), 'ikl-ckpt-'));
let runCount = 0;
const newRun = (): string => join(root, `run${++runCount}`);

/** A small conv net with batch norm whose running statistics are not at their initial values. */
function tinyModel(seed: number): tf.LayersModel {
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [6, 6, 3], filters: 4, kernelSize: 3 }),
      tf.layers.batchNormalization(),
      tf.layers.flatten(),
      tf.layers.dense({ units: 5 }),
    ],
  });
  const r = rng(seed);
  const values = model.getWeights().map((w) =>
    tf.tensor(
      Array.from({ length: w.size }, () => r() + 0.1),
      w.shape,
    ),
  );
  model.setWeights(values);
  tf.dispose(values);
  return model;
}

function weightsOf(model: tf.LayersModel): number[][] {
  return model.getWeights().map((w) => Array.from(w.dataSync()));
}

function meta(epoch: number): CheckpointMeta {
  return { arch: 'tiny', numClasses: 5, dataset: 'synthetic', epoch, step: epoch * 10, kind: 'last', metrics: [{ epoch, 'val.cleanAcc': 0.5 }] };
}

async function expectInputError(p: Promise<unknown>, pattern: RegExp): Promise<string> {
  let message = '';
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected InputError, got ${String(e)}`);
    message = e.message;
    return true;
  });
  assert.match(message, pattern);
  return message;
}

function flipByte(file: string, at: number): void {
  const bytes = readFileSync(file);
  bytes[at] = bytes[at]! ^ 0xff;
  writeFileSync(file, bytes);
}

test('round trip: weights (BN statistics included), meta, state, config hash and named tensors come back exactly', async () => {
  await noLeak(async () => {
    const run = newRun();
    const model = tinyModel(1);
    const config = resolveConfig({ sets: ['data.dataset=synthetic'] });
    const tensors = {
      'optimizer/momentum/0': tf.tensor([
        [1.5, -2.25],
        [3, 1e-8],
      ]),
      classWeights: tf.tensor([0.1, 0.2, 0.3, 0.4, 0.5], [5], 'float32'),
      counters: tf.tensor([7, -3], [2], 'int32'),
      mask: tf.tensor([true, false, true], [3], 'bool'),
    };
    const state = { rng: { epoch: 3, batch: 17 }, lrScale: 0.5 };
    await writeCheckpoint(join(run, 'last'), { model, meta: { ...meta(3), config }, state, tensors });
    const ck = await readCheckpoint(join(run, 'last'), { withTensors: true });
    assert.deepEqual(weightsOf(ck.model), weightsOf(model));
    assert.deepEqual(ck.state, state);
    assert.equal(ck.meta.epoch, 3);
    assert.equal(ck.meta.step, 30);
    assert.deepEqual(ck.meta.config, config);
    assert.equal(ck.meta.configHash, configHash(config), 'configHash filled in');
    assert.deepEqual(Object.keys(ck.tensors).sort(), Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      const back = ck.tensors[name]!;
      assert.equal(back.dtype, t.dtype, name);
      assert.deepEqual(back.shape, t.shape, name);
      assert.deepEqual(Array.from(back.dataSync()), Array.from(t.dataSync()), name);
    }
    // Without withTensors, no tensors are made.
    const light = await readCheckpoint(join(run, 'last'));
    assert.deepEqual(Object.keys(light.tensors), []);
    tf.dispose([...Object.values(tensors), ...Object.values(ck.tensors)]);
    model.dispose();
    ck.model.dispose();
    light.model.dispose();
  });
});

test('a model-zoo network (small-cnn) round-trips and predicts identically in inference mode', async () => {
  await noLeak(async () => {
    const run = newRun();
    const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 3 });
    await writeCheckpoint(join(run, 'wa'), { model, meta: { ...meta(1), numClasses: 10, arch: 'small-cnn' } });
    const ck = await readCheckpoint(join(run, 'wa'));
    const x = tf.randomUniform([2, 32, 32, 3], 0, 1, 'float32', 5);
    const a = tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync());
    const b = tf.tidy(() => (ck.model.predict(x) as tf.Tensor).dataSync());
    assert.deepEqual(Array.from(b), Array.from(a));
    x.dispose();
    model.dispose();
    ck.model.dispose();
  });
});

test('layout: `last` is a symlink to the newest generation, one previous generation is kept', async () => {
  await noLeak(async () => {
    const run = newRun();
    const model = tinyModel(2);
    for (let e = 1; e <= 4; e++) await writeCheckpoint(join(run, 'last'), { model, meta: meta(e) });
    assert.ok(lstatSync(join(run, 'last')).isSymbolicLink());
    assert.equal(readlinkSync(join(run, 'last')), 'last.g000004', 'relative link, so the run directory can move');
    assert.deepEqual(readdirSync(run).sort(), ['last', 'last.g000003', 'last.g000004']);
    assert.deepEqual(
      (await listGenerations(join(run, 'last'))).map((g) => g.seq),
      [4, 3],
    );
    assert.equal((await verifyCheckpoint(join(run, 'last'))).meta.epoch, 4);
    assert.equal((await verifyCheckpoint(join(run, 'last.g000003'))).meta.epoch, 3);
    model.dispose();
  });
});

test('model.json + weights.bin load with tf.loadLayersModel over HTTP, as in a browser', async () => {
  await noLeak(async () => {
    const run = newRun();
    const model = tinyModel(3);
    await writeCheckpoint(join(run, 'last'), { model, meta: meta(1) });
    const server = createServer((req, res) => {
      try {
        res.end(readFileSync(join(run, decodeURIComponent(req.url ?? '/'))));
      } catch {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const loaded = await tf.loadLayersModel(`http://127.0.0.1:${port}/last/model.json`);
      assert.deepEqual(weightsOf(loaded), weightsOf(model));
      loaded.dispose();
    } finally {
      server.close();
    }
    model.dispose();
  });
});

test('a write that fails between files leaves the previous checkpoint in place and no temporary directory', async () => {
  await noLeak(async () => {
    const run = newRun();
    const model = tinyModel(4);
    await writeCheckpoint(join(run, 'last'), { model, meta: meta(1) });
    const disposed = tf.ones([2]);
    disposed.dispose();
    // model.json and weights.bin are written, then reading the disposed tensor throws.
    await assert.rejects(writeCheckpoint(join(run, 'last'), { model, meta: meta(2), tensors: { broken: disposed } }), /disposed/);
    assert.deepEqual(readdirSync(run).sort(), ['last', 'last.g000001']);
    const ck = await readCheckpoint(join(run, 'last'));
    assert.equal(ck.meta.epoch, 1);
    assert.deepEqual(weightsOf(ck.model), weightsOf(model));
    ck.model.dispose();
    model.dispose();
  });
});

test('a write killed midway (partial temp dir, generation without checkpoint.json) is skipped, then cleaned up', async () => {
  await noLeak(async () => {
    const run = newRun();
    const model = tinyModel(5);
    await writeCheckpoint(join(run, 'last'), { model, meta: meta(1) });
    // What kill -9 can leave: a temp directory with some files, and (if the link swap never happened) a
    // generation whose files are incomplete.
    const tmp = join(run, '.last.g000002.tmp-424242');
    mkdirSync(tmp);
    writeFileSync(join(tmp, 'weights.bin'), new Uint8Array(10));
    cpSync(join(run, 'last.g000001'), join(run, 'last.g000002'), { recursive: true });
    rmSync(join(run, 'last.g000002', 'checkpoint.json'));
    const warnings: string[] = [];
    const point = await findResumableCheckpoint(run, { warn: (w) => warnings.push(w) });
    assert.ok(point);
    assert.equal(point.dir, join(run, 'last.g000001'));
    assert.equal(point.meta.epoch, 1);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /last\.g000002\/checkpoint\.json: missing; not a checkpoint directory, or its write was interrupted/);
    assert.deepEqual(point.warnings, warnings);
    // The next write takes a fresh generation number and removes the leftovers beyond the kept two.
    await writeCheckpoint(join(run, 'last'), { model, meta: meta(2) });
    assert.ok(!existsSync(tmp), 'stale temp directory removed');
    assert.equal(readlinkSync(join(run, 'last')), 'last.g000003');
    assert.equal((await findResumableCheckpoint(run))?.meta.epoch, 2);
    model.dispose();
  });
});

test('a corrupt or truncated weights.bin is refused with a message naming the file', async () => {
  await noLeak(async () => {
    const run = newRun();
    const model = tinyModel(6);
    await writeCheckpoint(join(run, 'last'), { model, meta: meta(1) });
    const weights = join(run, 'last', 'weights.bin');
    flipByte(weights, 5);
    await expectInputError(
      readCheckpoint(join(run, 'last')),
      /last\/weights\.bin: checksum mismatch \(sha256 [0-9a-f]{12}\.\.\., expected [0-9a-f]{12}\.\.\.\): the file is corrupt$/,
    );
    await expectInputError(verifyCheckpoint(join(run, 'last')), /last\/weights\.bin: checksum mismatch/);
    writeFileSync(weights, readFileSync(weights).subarray(0, 100));
    await expectInputError(readCheckpoint(join(run, 'last')), /last\/weights\.bin: has 100 bytes, expected \d+ \(truncated or overwritten\)/);
    rmSync(weights);
    await expectInputError(readCheckpoint(join(run, 'last')), /last\/weights\.bin: missing/);
    model.dispose();
  });
});

test('corrupt checkpoint.json, unknown versions and missing directories are refused by name', async () => {
  await noLeak(async () => {
    const run = newRun();
    const model = tinyModel(7);
    await writeCheckpoint(join(run, 'last'), { model, meta: meta(1) });
    const metaFile = join(run, 'last', 'checkpoint.json');
    const good = readFileSync(metaFile, 'utf8');
    writeFileSync(metaFile, good.slice(0, 50));
    await expectInputError(readCheckpoint(join(run, 'last')), /last\/checkpoint\.json: invalid JSON/);
    writeFileSync(metaFile, good.replace('"version": 1', '"version": 99'));
    await expectInputError(readCheckpoint(join(run, 'last')), /last\/checkpoint\.json: version: expected <= 1 \(written by a newer ikl-at\?\), got 99/);
    writeFileSync(metaFile, good.replace('"epoch": 1', '"epoch": "one"'));
    await expectInputError(readCheckpoint(join(run, 'last')), /last\/checkpoint\.json: epoch: expected an integer, got "one"/);
    await expectInputError(readCheckpoint(join(run, 'nope')), /nope: no such checkpoint directory/);
    model.dispose();
  });
});

test('findResumableCheckpoint falls back to the previous generation when the newest is corrupt', async () => {
  await noLeak(async () => {
    const run = newRun();
    assert.equal(await findResumableCheckpoint(run), undefined, 'a fresh run has nothing to resume');
    const a = tinyModel(8);
    const b = tinyModel(9);
    await writeCheckpoint(join(run, 'last'), { model: a, meta: meta(1) });
    await writeCheckpoint(join(run, 'last'), { model: b, meta: meta(2) });
    assert.equal((await findResumableCheckpoint(run))?.meta.epoch, 2);
    flipByte(join(run, 'last', 'weights.bin'), 0);
    const warned: string[] = [];
    const point = await findResumableCheckpoint(run, { warn: (w) => warned.push(w) });
    assert.equal(point?.meta.epoch, 1);
    assert.equal(point?.dir, join(run, 'last.g000001'));
    assert.match(warned[0] ?? '', /skipping checkpoint .*last\.g000002: .*weights\.bin: checksum mismatch/);
    const ck = await readCheckpoint(point!.dir);
    assert.deepEqual(weightsOf(ck.model), weightsOf(a));
    ck.model.dispose();
    // Nothing intact at all: an error, not a silent fresh start.
    flipByte(join(run, 'last.g000001', 'model.json'), 3);
    await expectInputError(findResumableCheckpoint(run), /no intact checkpoint to resume from/);
    a.dispose();
    b.dispose();
  });
});

test('a plain directory copied in place of the link (cp -rL) is read, and adopted as a generation on the next write', async () => {
  await noLeak(async () => {
    const run = newRun();
    const src = newRun();
    const model = tinyModel(10);
    await writeCheckpoint(join(src, 'last'), { model, meta: meta(5) });
    mkdirSync(run);
    cpSync(join(src, 'last'), join(run, 'last'), { recursive: true, dereference: true });
    assert.ok(!lstatSync(join(run, 'last')).isSymbolicLink());
    assert.equal((await findResumableCheckpoint(run))?.meta.epoch, 5);
    await writeCheckpoint(join(run, 'last'), { model, meta: meta(6) });
    assert.ok(lstatSync(join(run, 'last')).isSymbolicLink());
    assert.deepEqual(readdirSync(run).sort(), ['last', 'last.g000001', 'last.g000002']);
    assert.equal((await verifyCheckpoint(join(run, 'last.g000001'))).meta.epoch, 5);
    model.dispose();
  });
});
