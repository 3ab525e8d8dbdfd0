/**
 * PyTorch → tfjs: every zoo family, every container / prefix / format / dtype variant written by PyTorch itself
 * (scripts/fixtures/torch_interop.py) gives PyTorch's logits; refused and mismatching files say why.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../../src/errors.js';
import { forward } from '../../src/models/index.js';
import {
  compareKeys,
  expectedKeys,
  importIntoModel,
  mappingFor,
  readStateDictFile,
  readWeightFile,
  recogniseArch,
  resolveArch,
} from '../../src/interop/index.js';
import { parseArch } from '../../src/models/index.js';
import { archDef } from '../../src/models/archs.js';
import { noLeak } from '../helpers.js';
import { CASES, FULL_SIZE_KEYS, buildCase, fixture, fixtureInputs, relDiff, type Case } from './fixtures.js';

async function importedLogits(c: Case): Promise<{ logits: Float32Array; source: Awaited<ReturnType<typeof readStateDictFile>>['source'] }> {
  const flat = await readStateDictFile(fixture(c.file));
  const model = buildCase(c);
  try {
    importIntoModel(model, mappingFor(c.family), flat, c.file, c.family);
    const logits = await noLeak(() => {
      const x = fixtureInputs();
      const y = forward(model, x, { training: false });
      const v = y.dataSync() as Float32Array;
      tf.dispose([x, y]);
      return v;
    });
    return { logits, source: flat.source };
  } finally {
    model.dispose();
  }
}

for (const c of CASES.main) {
  test(`${c.file}: imported ${c.family} gives PyTorch's logits (eval mode) to 1e-4 of the logit scale`, async () => {
    const { logits } = await importedLogits(c);
    const expected = c.logits.flat();
    const rel = relDiff(logits, expected);
    assert.ok(rel < 1e-4, `max |ours - torch| / max |torch| = ${rel}`);
    // Not vacuous: a random model of the same family is far from PyTorch's logits.
    const other = buildCase(c, 99);
    const x = fixtureInputs();
    const y = forward(other, x, { training: false });
    assert.ok(relDiff(y.dataSync(), expected) > 1e-2);
    tf.dispose([x, y]);
    other.dispose();
    console.log(`# ${c.file}: max rel logit diff ${rel.toExponential(2)}`);
  });
}

test('every container, prefix, file format and dtype PyTorch writes loads with the same predictions', async () => {
  const seen = new Set<string>();
  for (const c of CASES.variants) {
    const { logits, source } = await importedLogits(c);
    const rel = relDiff(logits, c.logits.flat());
    assert.ok(rel < 1e-4, `${c.file} (${c.note}): rel diff ${rel}`);
    seen.add(`${source.format}|${source.container}|${source.prefix}`);
    console.log(`# ${c.file}: ${source.format} container '${source.container}' prefix '${source.prefix}': ${rel.toExponential(2)}`);
  }
  for (const want of ['torch-zip||', 'torch-zip|state_dict|module.', 'torch-zip|model_state_dict|module.0.', 'torch-legacy|model|', 'safetensors||']) {
    assert.ok(seen.has(want), `variant ${want} covered`);
  }
});

test('a pickle naming a foreign global is refused by name, and nothing runs', async () => {
  await assert.rejects(readStateDictFile(fixture('evil_os_system.pt')), (e: Error) => {
    assert.ok(e instanceof InputError);
    assert.match(e.message, /evil_os_system\.pt: pickle: refused global '(posix|os)\.system'/);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
  await assert.rejects(readStateDictFile(fixture('foreign_namespace.pt')), /refused global 'argparse\.Namespace'/);
});

test('hand-made pickles: disallowed opcodes and a REDUCE of a non-callable are refused', () => {
  // PROTO 2, GLOBAL collections OrderedDict, EMPTY_TUPLE, REDUCE, then INST (not used by state_dicts).
  const enc = new TextEncoder();
  const inst = Uint8Array.from([0x80, 2, 0x28, ...enc.encode('ibuiltins\nprint\n'), 0x2e]);
  const zipLess = (b: Uint8Array) => readWeightFile(Uint8Array.from([...b]));
  assert.throws(() => zipLess(inst), /not a PyTorch/); // not even sniffed as a weight file
  // Through the unpickler directly.
  return import('../../src/interop/pickle.js').then(({ unpickle }) => {
    assert.throws(() => unpickle(inst), /refused opcode 0x69/);
    const reduceStr = Uint8Array.from([0x80, 2, 0x8c, 1, 0x61, 0x29, 0x52, 0x2e]);
    assert.throws(() => unpickle(reduceStr), /REDUCE of something that is not an allowed callable/);
    assert.throws(() => unpickle(Uint8Array.from([0x80, 2, 0x5d])), /truncated pickle/);
    assert.throws(() => unpickle(Uint8Array.from([0x80, 2, 0x30, 0x2e])), /stack underflow/);
  });
});

test("full-size key sets of the official PyTorch modules are exactly the zoo models' keys (ids and shapes)", () => {
  for (const [arch, keys] of Object.entries(FULL_SIZE_KEYS)) {
    const shapes = new Map(Object.entries(keys));
    const seen = recogniseArch(shapes);
    assert.deepEqual(seen, { arch, numClasses: 10 }, `${arch} recognised from its keys`);
    const model = archDef(parseArch(arch)).build(10); // zero weights: only names and shapes matter here
    try {
      const mapping = mappingFor(arch);
      const m = compareKeys(expectedKeys(model, mapping), shapes, mapping);
      assert.deepEqual(m, { missing: [], unexpected: [], wrongShape: [] }, arch);
    } finally {
      model.dispose();
    }
  }
});

test('a state_dict of another architecture or class count is refused naming missing, unexpected and misshaped keys', async () => {
  const flat = await readStateDictFile(fixture('preact_resnet18_w4.pt'));
  // Recognised as PreActResNet-18, but it is 4 wide: every conv is misshaped for the zoo's 64-wide one.
  assert.deepEqual(resolveArch(flat, 'f', {}), { arch: 'preact-resnet-18', numClasses: 10 });
  const model = buildCase({ family: 'resnet', params: { width: 4 }, numClasses: 10 });
  try {
    assert.throws(
      () => importIntoModel(model, mappingFor('resnet'), flat, 'preact.pt', 'resnet-18'),
      (e: Error) =>
        e instanceof InputError && /^preact\.pt: does not match resnet-18: \d+ missing \(bn1\.weight, .*\d+ unexpected \(bn\.weight/.test(e.message),
    );
  } finally {
    model.dispose();
  }
  const c100 = buildCase({ family: 'preact-resnet', params: { width: 4 }, numClasses: 100 });
  try {
    assert.throws(
      () => importIntoModel(c100, mappingFor('preact-resnet'), flat, 'p.pt', 'x'),
      /1 wrongly shaped \(linear\.weight \[10,32\] \(expected \[100,32\]\)\)|2 wrongly shaped \(linear\.weight/,
    );
  } finally {
    c100.dispose();
  }
  // Any depth and width of a WRN family is in the zoo (parametric builders), recognised as what it is.
  const wrn = await readStateDictFile(fixture('trades_wrn_10_1.pt'));
  assert.deepEqual(resolveArch(wrn, 'w.pt', {}), { arch: 'wrn-10-1', numClasses: 10 });
  assert.equal(readFileSync(fixture('cases.json'), 'utf8').length > 0, true);
});

test("TRADES' unused sub_block1 keys and num_batches_tracked are skipped; any other extra key is unexpected; class count from the head", async () => {
  const c = CASES.main.find((x) => x.family === 'trades-wrn')!;
  const flat = await readStateDictFile(fixture(c.file));
  const extra = (key: string) => ({ ...flat, tensors: new Map([...flat.tensors, [key, flat.tensors.get('conv1.weight')!]]) });
  const model = buildCase(c);
  try {
    importIntoModel(model, mappingFor(c.family), extra('sub_block1.layer.0.conv1.weight'), 'f.pt', 'wrn');
    assert.throws(
      () => importIntoModel(model, mappingFor(c.family), extra('block4.layer.0.conv1.weight'), 'f.pt', 'wrn'),
      /^Error: f\.pt: does not match wrn: 1 unexpected \(block4\.layer\.0\.conv1\.weight\)$|f\.pt: does not match wrn: 1 unexpected \(block4\.layer\.0\.conv1\.weight\)/,
    );
  } finally {
    model.dispose();
  }
  const swish = await readStateDictFile(fixture('dm_wrn_10_1_swish_c100.pt'));
  assert.deepEqual(recogniseArch(new Map([...swish.tensors].map(([k, t]) => [k, t.shape]))), { arch: 'wrn-10-1-swish', numClasses: 100 });
});
