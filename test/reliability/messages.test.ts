/**
 * Issue 11, "Messages and small defects": each message names the file or flag, the key and what was expected,
 * in one escaped line; and the small defects (pruning after a fallback, a failed run's empty folder, what
 * ikl-eval reads) stay fixed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { findResumableCheckpoint, listGenerations, readCheckpoint, writeCheckpoint } from '../../src/checkpoint/index.js';
import { configDiff, describeConfigDiff, resolveConfig } from '../../src/config/index.js';
import { CIFAR10_DIR, loadDataset, loadTestSet } from '../../src/data/index.js';
import { InputError } from '../../src/errors.js';
import { resolveEvalOptions } from '../../src/eval/options.js';
import { createModel } from '../../src/models/index.js';
import { train } from '../../src/train/index.js';
import { tempDir } from '../eval/fixture.js';

const root = new URL('../../..', import.meta.url).pathname;
const dir = tempDir('ikl-messages-');

function file(name: string, text: string | Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
function cli(binName: string, args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(root, 'bin', binName), ...args], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, IKL_BACKEND: 'cpu', ...env },
    timeout: 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const inputError = (re: RegExp) => (e: unknown) => e instanceof InputError && re.test(e.message);

test('YAML .nan and .inf are reported as written, not as null', () => {
  assert.throws(
    () => resolveConfig({ file: file('nan.yaml', 'schedule:\n  epochs: .nan\n') }),
    inputError(/nan\.yaml: schedule\.epochs: expected an integer, got \.nan$/),
  );
  assert.throws(() => resolveConfig({ file: file('inf.yaml', 'optimizer:\n  lr: -.inf\n') }), inputError(/inf\.yaml: optimizer\.lr: .*got -\.inf$/));
});

test('an empty config file is refused, saying how to get the defaults', () => {
  for (const text of ['', '# only a comment\n']) {
    assert.throws(
      () => resolveConfig({ file: file('empty.yaml', text) }),
      inputError(/empty\.yaml: is empty \(no config keys\); leave out --config to train with the built-in defaults/),
    );
  }
});

test('a constraint between keys is blamed on the --set that broke it, else on the file', () => {
  const f = file('warm.yaml', 'schedule:\n  epochs: 10\n  warmupEpochs: 2\n');
  assert.doesNotThrow(() => resolveConfig({ file: f }));
  assert.throws(
    () => resolveConfig({ file: f, sets: ['schedule.epochs=2'] }),
    inputError(/^--set schedule\.epochs=2: schedule\.warmupEpochs: expected fewer warm-up epochs than schedule\.epochs \(2\), got 2$/),
  );
  const g = file('warm-bad.yaml', 'schedule:\n  epochs: 2\n  warmupEpochs: 2\n');
  assert.throws(() => resolveConfig({ file: g, sets: ['optimizer.lr=0.1'] }), inputError(/^.*warm-bad\.yaml: schedule\.warmupEpochs/));
  assert.throws(
    () => resolveConfig({ sets: ['data.dataset=cifar100', 'model.numClasses=10'] }),
    inputError(/^--set model\.numClasses=10: model\.numClasses: expected 100/),
  );
  assert.throws(
    () => resolveConfig({ file: file('nc.yaml', 'model:\n  numClasses: 10\n'), sets: ['data.dataset=cifar100'] }),
    inputError(/^--set data\.dataset=cifar100: model\.numClasses: expected 100/),
  );
});

test('a binary file given as config: one line with a short escaped excerpt, no control characters', () => {
  const bytes = new Uint8Array(600);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 0x1b, 0x5b, 0x32, 0x4a, 0x07]);
  for (let i = 9; i < bytes.length; i++) bytes[i] = (i * 37) & 0xff;
  const f = file('weights.yaml', bytes);
  const r = cli('ikl-train.js', ['--config', f, '--print-config']);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(
    r.stderr,
    /^ikl-train: .*weights\.yaml: is not a text file \(starts with '\\u007fELF\\u001b\[2J\\u0007.*'\.\.\.\); expected a YAML or JSON config\n$/,
  );
  // eslint-disable-next-line no-control-regex -- the assertion is about control characters
  assert.ok(!/[\x00-\x09\x0b-\x1f\x7f]/.test(r.stderr), 'no control character reaches the terminal');
  assert.ok(r.stderr.length < 300, `short: ${r.stderr.length} characters`);
});

test("run.name with '..' or an absolute path is refused: the run directory stays inside run.outDir", () => {
  for (const name of ['../../escape', 'a/../../b', '/tmp/x']) {
    assert.throws(
      () => resolveConfig({ sets: [`run.name=${name}`] }),
      inputError(/run\.name: expected a name inside run\.outDir \(no '\.\.' part, not an absolute path\)/),
      name,
    );
  }
  assert.equal(resolveConfig({ sets: ['run.name=sweep/lr-0.1'] }).run.name, 'sweep/lr-0.1');
});

test('one batch-size rule for configs and flags', () => {
  const rule = /expected a whole number in \[1, 65536\], got 1000000000$/;
  assert.throws(() => resolveConfig({ file: file('bs.yaml', 'data:\n  batchSize: 1e9\n') }), inputError(rule));
  assert.throws(() => resolveConfig({ sets: ['data.batchSize=1e9'] }), inputError(rule));
  assert.throws(() => resolveEvalOptions({ checkpoint: 'c', attack: 'pgd', batchSize: '1e9' }), inputError(rule));
  assert.equal(resolveEvalOptions({ checkpoint: 'c', attack: 'pgd', batchSize: '65536' }).batchSize, 65536);
  assert.equal(resolveConfig({ sets: ['data.batchSize=65536'] }).data.batchSize, 65536);
});

test('the config-hash refusal on --resume names the keys that differ', async () => {
  const base = ['data.synthetic.nTrain=64', 'data.synthetic.nTest=8', 'data.valSize=8', 'model.arch=small-cnn', 'data.batchSize=16'];
  const a = resolveConfig({ file: join(root, 'configs', 'quickstart.yaml'), sets: base });
  const b = resolveConfig({ file: join(root, 'configs', 'quickstart.yaml'), sets: [...base, 'optimizer.lr=0.1', 'attack.steps=3', 'run.logFormat=json'] });
  assert.deepEqual(configDiff(a, b), ['attack.steps', 'optimizer.lr'], 'presentation keys are not differences');
  assert.equal(describeConfigDiff(a, b), 'attack.steps 2 -> 3, optimizer.lr 0.03 -> 0.1');
  const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 0 });
  const ckpt = join(dir, 'resume-run', 'last');
  await writeCheckpoint(ckpt, { model, meta: { arch: 'small-cnn', numClasses: 10, dataset: 'synthetic', epoch: 1, step: 4, config: a } });
  model.dispose();
  await assert.rejects(
    train(b, { runDir: join(dir, 'resume-run'), resume: ckpt }),
    inputError(
      /the checkpoint was trained with another config \(hash [0-9a-f]{12}, this one [0-9a-f]{12}; differs in attack\.steps 2 -> 3, optimizer\.lr 0\.03 -> 0\.1\); resume with its config\.resolved\.yaml/,
    ),
  );
});

test('a run directory given as a checkpoint: the message names its wa/, best/, last/', async () => {
  const run = join(dir, 'a-run');
  mkdirSync(join(run, 'wa'), { recursive: true });
  mkdirSync(join(run, 'last'));
  await assert.rejects(
    readCheckpoint(run),
    inputError(
      new RegExp(`a-run looks like a run directory: use one of its checkpoints, ${run}/wa, ${run}/last; wa/, the weight average, is the one to evaluate\\)$`),
    ),
  );
});

test('after a fallback from a corrupt generation, pruning keeps the intact one and drops the corrupt one', async () => {
  const ckpt = join(dir, 'prune', 'last');
  const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 0 });
  const meta = (epoch: number) => ({ arch: 'small-cnn', numClasses: 10, dataset: 'synthetic', epoch, step: epoch });
  try {
    await writeCheckpoint(ckpt, { model, meta: meta(1) });
    const g2 = (await writeCheckpoint(ckpt, { model, meta: meta(2) })).generationDir;
    writeFileSync(join(g2, 'weights.bin'), 'corrupt'); // g2 (what last/ points to) is now corrupt
    const found = (await findResumableCheckpoint(join(dir, 'prune')))!;
    assert.equal(found.meta.epoch, 1, 'fell back to g1');
    await writeCheckpoint(ckpt, { model, meta: meta(3) });
    const names = (await listGenerations(ckpt)).map((g) => g.path.split('/').at(-1));
    assert.deepEqual(names, ['last.g000003', 'last.g000001'], 'the intact fallback is kept, the corrupt one pruned');
  } finally {
    model.dispose();
  }
});

test('a failed run leaves no empty run directory (nor the folders it would have created)', () => {
  const runDir = join(dir, 'new-out', 'runs', 'r1');
  const r = cli('ikl-train.js', [
    '--set',
    'data.dataset=cifar10',
    '--set',
    `data.dataDir=${join(dir, 'no-data')}`,
    '--set',
    'data.download=false',
    '--set',
    'model.arch=small-cnn',
    '--run-dir',
    runDir,
    '--backend',
    'cpu',
    '--log-format',
    'json',
  ]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /ikl-train: cifar10: .*no-data\/cifar-10-batches-bin\/ is missing and downloading is disabled/);
  assert.ok(!existsSync(join(dir, 'new-out')), `left behind: ${existsSync(runDir) ? readdirSync(runDir) : 'new-out/'}`);
  // An existing folder is left in place.
  mkdirSync(join(dir, 'kept'));
  const r2 = cli('ikl-train.js', [
    '--set',
    'data.dataset=cifar10',
    '--set',
    `data.dataDir=${join(dir, 'no-data')}`,
    '--set',
    'data.download=false',
    '--run-dir',
    join(dir, 'kept'),
    '--backend',
    'cpu',
  ]);
  assert.equal(r2.status, 2, r2.stderr);
  assert.ok(existsSync(join(dir, 'kept')));
});

test('ikl-eval reads only the test file: missing training files do not block an evaluation', async () => {
  const data = join(dir, 'cifar-test-only');
  mkdirSync(join(data, CIFAR10_DIR), { recursive: true });
  const records = new Uint8Array(10_000 * 3073);
  for (let i = 0; i < 10_000; i++) records[i * 3073] = i % 10;
  writeFileSync(join(data, CIFAR10_DIR, 'test_batch.bin'), records);
  const test10 = await loadTestSet('cifar10', { dataDir: data, download: false });
  assert.equal(test10.n, 10_000);
  assert.deepEqual(Array.from(test10.labels.subarray(0, 12)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
  // Training needs the training files, and says which one is missing.
  await assert.rejects(loadDataset('cifar10', { dataDir: data, download: false }), inputError(/data_batch_1\.bin: missing/));
  // The test file itself is still required.
  await assert.rejects(loadTestSet('cifar10', { dataDir: join(dir, 'none'), download: false }), InputError);
});
