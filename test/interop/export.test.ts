/**
 * tfjs → PyTorch: exports carry the official keys and shapes, round-trip bit-identically, are byte-identical to the
 * files PyTorch loaded strictly (with the same logits) in the by-hand check recorded in export_check.json.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { zipSync } from 'fflate';
import { exportModel, importIntoModel, loadTorchModel, mappingFor, readStateDictFile, readWeightFile, sniffFormat } from '../../src/interop/index.js';
import { initModelFrom } from '../../src/interop/init-from.js';
import { writeCheckpoint } from '../../src/checkpoint/index.js';
import { createModel } from '../../src/models/index.js';
import { InputError } from '../../src/errors.js';
import { tempDir } from '../eval/fixture.js';
import { heavy } from '../helpers.js';
import { buildCase, exportCases, exportModelOf, fixture } from './fixtures.js';

const sha = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

const CHECK = JSON.parse(readFileSync(fixture('export_check.json'), 'utf8')) as {
  torch: string;
  results: Array<{ file: string; sha256: string; strict_load: boolean; max_rel_diff: number }>;
};

test('exports are byte-identical to the files PyTorch loaded with strict=True and the same logits (export_check.json)', async () => {
  const dir = tempDir('ikl-interop-');
  const byFile = new Map(CHECK.results.map((r) => [r.file, r]));
  let n = 0;
  for (const c of exportCases()) {
    const model = exportModelOf(c);
    for (const ext of ['pt', 'safetensors']) {
      const file = `${c.file.replace(/\.pt$/, '')}.export.${ext}`;
      const digest = await exportModel(model, c.family, join(dir, file));
      const checked = byFile.get(file);
      assert.ok(checked, `${file} was checked in PyTorch`);
      assert.equal(digest, checked.sha256, `${file}: the exporter's bytes changed since the PyTorch check; rerun it (see scripts/fixtures/interop-export.mjs)`);
      assert.equal(sha(join(dir, file)), digest);
      assert.equal(checked.strict_load, true);
      assert.ok(checked.max_rel_diff < 1e-4, `${file}: PyTorch logits differ by ${checked.max_rel_diff}`);
      n++;
    }
    model.dispose();
  }
  assert.equal(n, CHECK.results.length);
});

test('export keys and shapes are exactly the official PyTorch state_dict (num_batches_tracked included)', async () => {
  const dir = tempDir('ikl-interop-');
  for (const c of exportCases()) {
    const official = await readStateDictFile(fixture(c.file)); // written by PyTorch from the official module
    const model = exportModelOf(c);
    for (const ext of ['pt', 'safetensors']) {
      const out = join(dir, `x.${ext}`);
      await exportModel(model, c.family, out);
      const bytes = new Uint8Array(readFileSync(out));
      assert.equal(sniffFormat(bytes), ext === 'pt' ? 'torch-zip' : 'safetensors');
      const ours = await readStateDictFile(out);
      const shapes = (m: Map<string, { shape: number[] }>) => Object.fromEntries([...m].map(([k, t]) => [k, t.shape]).sort());
      assert.deepEqual(shapes(ours.tensors), shapes(official.tensors), `${c.file} .${ext}`);
      assert.equal(ours.tensors.get([...ours.tensors.keys()].find((k) => k.endsWith('num_batches_tracked'))!)!.dtype, 'int64');
    }
    model.dispose();
  }
});

test('round trip ours → .pt / .safetensors → import is bit-identical for every family', async () => {
  const dir = tempDir('ikl-interop-');
  for (const c of exportCases()) {
    const model = exportModelOf(c);
    for (const ext of ['pt', 'safetensors']) {
      const out = join(dir, `rt.${ext}`);
      await exportModel(model, c.family, out);
      const back = buildCase(c, 12345);
      importIntoModel(back, mappingFor(c.family), await readStateDictFile(out), out, c.family);
      model.weights.forEach((w, i) => {
        const a = w.read().dataSync();
        const b = back.weights[i]!.read().dataSync();
        assert.equal(
          Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)),
          0,
          `${c.family} ${w.originalName} .${ext}`,
        );
      });
      back.dispose();
    }
    model.dispose();
  }
});

test('corrupt and truncated files: one-line InputError naming the file', async () => {
  const dir = tempDir('ikl-interop-');
  const pt = new Uint8Array(readFileSync(fixture('v_bare_strided.pt')));
  const st = new Uint8Array(readFileSync(fixture('v_bare.safetensors')));
  const legacy = new Uint8Array(readFileSync(fixture('v_model_legacy.pt')));
  const header = st.slice();
  header[20] = 0x00; // inside the JSON header
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['trunc.pt', pt.subarray(0, Math.floor(pt.length / 2)), /not a readable zip archive/],
    ['trunc.safetensors', st.subarray(0, st.length - 100), /offsets outside the data|truncated/],
    ['badheader.safetensors', header, /header is not JSON/],
    ['trunc-legacy.pt', legacy.subarray(0, legacy.length - 1000), /truncated/],
    ['empty.pt', new Uint8Array(0), /not a PyTorch/],
    // 20 MB of zeros deflated to ~20 kB: refused before inflating.
    [
      'bomb.pt',
      zipSync({ 'archive/data.pkl': new Uint8Array(20 * 2 ** 20) }, { level: 9 }),
      /zip entry 'archive\/data\.pkl' would inflate far beyond the file size/,
    ],
    ['text.pt', new TextEncoder().encode('hello, not weights\n'), /not a PyTorch/],
  ];
  for (const [name, bytes, re] of cases) {
    const f = join(dir, name);
    writeFileSync(f, bytes);
    await assert.rejects(readStateDictFile(f), (e: Error) => {
      assert.ok(e instanceof InputError, `${name}: ${e.message}`);
      assert.ok(e.message.startsWith(f), e.message);
      assert.match(e.message, re);
      assert.doesNotMatch(e.message, /\n/);
      return true;
    });
  }
  assert.throws(() => readWeightFile(pt.subarray(0, 3)), /not a PyTorch/);
});

test('init-from: a checkpoint directory or a .pt file sets every weight; another architecture is refused by name', async () => {
  const dir = tempDir('ikl-interop-');
  const src = createModel({ arch: 'small-cnn', numClasses: 10, seed: 3 });
  const ckpt = join(dir, 'ckpt');
  await writeCheckpoint(ckpt, { model: src, meta: { arch: 'small-cnn', numClasses: 10, dataset: 'synthetic', epoch: 1, step: 1 } });
  await exportModel(src, 'small-cnn', join(dir, 'w.pt'));
  for (const from of [ckpt, join(dir, 'w.pt')]) {
    const dst = createModel({ arch: 'small-cnn', numClasses: 10, seed: 4 });
    await initModelFrom(dst, 'small-cnn', from);
    src.weights.forEach((w, i) => assert.deepEqual(dst.weights[i]!.read().dataSync(), w.read().dataSync(), `${from} ${w.originalName}`));
    dst.dispose();
  }
  const other = createModel({ arch: 'small-cnn', numClasses: 100, seed: 4 });
  await assert.rejects(
    initModelFrom(other, 'small-cnn', join(dir, 'w.pt')),
    /w\.pt: does not match model\.arch small-cnn with 100 classes: 2 wrongly shaped \(fc\.weight \[10,64\] \(expected \[100,64\]\)/,
  );
  await assert.rejects(initModelFrom(other, 'resnet-18', ckpt), /is a small-cnn, the config's model\.arch is resnet-18/);
  other.dispose();
  src.dispose();
});

test('full size: wrn-28-10-swish (CIFAR-100) → .safetensors → loadTorchModel is bit-identical, input normalisation included', heavy, async () => {
  const dir = tempDir('ikl-interop-');
  const model = createModel({ arch: 'wrn-28-10-swish', numClasses: 100, seed: 7 });
  const file = join(dir, 'swish.safetensors');
  await exportModel(model, 'wrn-28-10-swish', file);
  const m = await loadTorchModel(file); // architecture and class count recognised from the keys
  try {
    assert.equal(m.arch, 'wrn-28-10-swish');
    assert.equal(m.numClasses, 100);
    assert.equal(m.model.weights.length, model.weights.length);
    model.weights.forEach((w, i) => {
      const v = m.model.weights[i]!;
      assert.equal(v.originalName, w.originalName);
      const a = w.read().dataSync();
      const b = v.read().dataSync();
      assert.ok(a.length === b.length && a.every((x, j) => Object.is(x, b[j])), w.originalName);
    });
  } finally {
    m.model.dispose();
    model.dispose();
  }
});
