import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { heavy } from '../helpers.js';
import { planTraining, type TrainFlags } from '../../src/cli/train.js';
import { configHash, jsonSchemaText, resolveConfig } from '../../src/config/index.js';
import { InputError } from '../../src/errors.js';
import { writeCheckpoint } from '../../src/checkpoint/index.js';
import { createModel } from '../../src/models/index.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'ikl-train.js');
const EVAL_BIN = join(ROOT, 'bin', 'ikl-eval.js');
const tmp = mkdtempSync(join(tmpdir(), 'ikl-cli-train-'));

function cli(args: string[], env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function file(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

const flags = (f: Partial<TrainFlags>): TrainFlags => ({ set: [], progress: true, ...f });

test('bad config file: exit 2 and one line naming the file, the key and what was expected', () => {
  const bad = file('bad.yaml', 'attack:\n  steps: -1\n');
  const r = cli(['--config', bad]);
  assert.equal(r.status, 2);
  assert.equal(r.stderr, `ikl-train: ${bad}: attack.steps: expected a positive integer, got -1\n`);
  assert.equal(r.stdout, '');
});

test('bad --set, unknown key, unknown flag, bad --backend, missing --resume dir: exit 2 with one line', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--set', 'optimizer.lr=-1', '--print-config'], /^ikl-train: --set optimizer\.lr=-1: optimizer\.lr: expected a positive number, got -1\n$/],
    [['--set', 'optimiser.lr=1', '--print-config'], /^ikl-train: --set optimiser\.lr=1: unknown key 'optimiser' \(expected one of: run, /],
    [['--frobnicate'], /^ikl-train: unknown option '--frobnicate'\n$/],
    [['--backend', 'tpu', '--print-config'], /^ikl-train: --backend: expected one of auto\|tensorflow\|gpu\|cpu, got 'tpu'\n$/],
    [['--resume', join(tmp, 'nowhere')], /^ikl-train: --resume .*nowhere: no such run or checkpoint directory\n$/],
    [['--config', join(tmp, 'absent.yaml')], /absent\.yaml: cannot read the config file \(no such file\)\n$/],
  ];
  for (const [args, pattern] of cases) {
    const r = cli(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
});

test('--epochs, --lr, --batch-size, --seed, --data-dir are their --set keys (same config and hash); both at once is refused', () => {
  const short = cli(['--epochs', '7', '--lr', '0.05', '--batch-size', '64', '--seed', '3', '--data-dir', '/datasets/c10', '--print-config']);
  const long = cli([
    '--set',
    'schedule.epochs=7',
    '--set',
    'optimizer.lr=0.05',
    '--set',
    'data.batchSize=64',
    '--set',
    'run.seed=3',
    '--set',
    'data.dataDir=/datasets/c10',
    '--print-config',
  ]);
  assert.equal(short.status, 0, short.stderr);
  assert.equal(short.stdout, long.stdout);
  assert.match(short.stdout, /dataDir: \/datasets\/c10/);
  const both = cli(['--lr', '0.05', '--set', 'optimizer.lr=0.1', '--print-config']);
  assert.equal(both.status, 2);
  assert.equal(both.stderr, 'ikl-train: --lr: is --set optimizer.lr, which is also given; give one of them\n');
  // Errors name the flag as typed.
  const bad = cli(['--lr', '-1', '--print-config']);
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr, 'ikl-train: --lr -1: optimizer.lr: expected a positive number, got -1\n');
});

test('--help has an Examples section; --schema prints the JSON Schema', () => {
  const help = cli(['--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /Examples:\n\s+\$ ikl-train --config configs\/quickstart\.yaml/);
  assert.match(help.stdout, /--set <key=value>/);
  const schema = cli(['--schema']);
  assert.equal(schema.status, 0);
  assert.equal(schema.stdout, jsonSchemaText());
});

test('--print-config prints YAML that re-validates to the same config (file < --set precedence)', () => {
  const cfg = file('p.yaml', 'attack:\n  steps: 7\ndata:\n  dataset: cifar100\n');
  const r = cli(['--config', cfg, '--set', 'attack.steps=9', '--set', 'optimizer.lr=1/10', '--print-config']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^# ikl-train resolved config \(hash [0-9a-f]{64}\)/);
  const printed = file('printed.yaml', r.stdout);
  const again = resolveConfig({ file: printed });
  assert.deepEqual(again, resolveConfig({ file: cfg, sets: ['attack.steps=9', 'optimizer.lr=0.1'] }));
  assert.equal(again.attack.steps, 9);
  assert.equal(again.model.numClasses, 100);
});

test('planTraining: run directory from the config or --run-dir; presentation flags do not change the hash', async () => {
  const p = await planTraining(flags({ set: ['run.name=abc', 'run.outDir=out'] }));
  assert.equal(p.runDir, join('out', 'abc'));
  assert.equal(p.resume, false);
  const q = await planTraining(flags({ set: ['run.name=abc'], runDir: 'elsewhere', backend: 'cpu', logFormat: 'json', progress: false }));
  assert.equal(q.runDir, 'elsewhere');
  assert.deepEqual([q.config.run.backend, q.config.run.logFormat, q.config.run.progress], ['cpu', 'json', false]);
  assert.equal(configHash(q.config), configHash(resolveConfig({ sets: ['run.name=abc'] })));
  await assert.rejects(
    planTraining(flags({ logFormat: 'xml' })),
    (e: unknown) => e instanceof InputError && /--log-format: expected one of auto\|json\|pretty/.test(e.message),
  );
});

test('planTraining --resume: a run directory resumes with its config.resolved.yaml; a checkpoint directory with its stored config', async () => {
  const runDir = join(tmp, 'resumable');
  mkdirSync(runDir, { recursive: true });
  writeFileSync(join(runDir, 'config.resolved.yaml'), 'run:\n  name: resumable\nattack:\n  steps: 3\n');
  const p = await planTraining(flags({ resume: runDir }));
  assert.equal(p.runDir, runDir);
  assert.equal(p.resume, true);
  assert.equal(p.config.attack.steps, 3);
  assert.equal(p.configSource, join(runDir, 'config.resolved.yaml'));

  // A real (checksummed) checkpoint: the config is read through the verified reader.
  const ckDir = join(tmp, 'some-run', 'last');
  const stored = resolveConfig({ sets: ['attack.steps=4', 'run.name=from-ckpt', 'model.arch=small-cnn'] });
  const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 0 });
  await writeCheckpoint(ckDir, {
    model,
    meta: { arch: 'small-cnn', numClasses: 10, dataset: 'cifar10', epoch: 0, step: 0, config: stored },
    state: {},
    tensors: {},
  });
  model.dispose();
  const q = await planTraining(flags({ resume: ckDir }));
  assert.equal(q.resume, ckDir);
  assert.deepEqual(q.config, stored);
  assert.equal(q.runDir, join('checkpoints', 'from-ckpt'));
  // --set on top of a stored config is validated (and named) like any other.
  await assert.rejects(
    planTraining(flags({ resume: ckDir, set: ['attack.steps=0'] })),
    (e: unknown) => e instanceof InputError && e.message === '--set attack.steps=0: attack.steps: expected a positive integer, got 0',
  );
  await assert.rejects(planTraining(flags({ resume: runDir, runDir: join(tmp, 'other') })), /is a run directory but --run-dir says/);

  // Bare --resume: the run directory named by the config; its saved config wins over the defaults.
  mkdirSync(join(tmp, 'bare'), { recursive: true });
  writeFileSync(join(tmp, 'bare', 'config.resolved.yaml'), `run:\n  name: bare\n  outDir: ${tmp}\nattack:\n  steps: 2\n`);
  const b = await planTraining(flags({ resume: true, set: [`run.outDir=${tmp}`, 'run.name=bare'] }));
  assert.equal(b.runDir, join(tmp, 'bare'));
  assert.equal(b.config.attack.steps, 2);
  assert.equal(b.configSource, join(tmp, 'bare', 'config.resolved.yaml'));
});

// ---------------------------------------------------------------------------------------------------------------
// End to end: train on generated data → checkpoints → ikl-eval reads wa/; Ctrl-C → exit 130 → --resume.

const TINY = `# tiny synthetic run for the CLI tests
run: { name: tiny, progress: false }
data:
  dataset: synthetic
  synthetic: { nTrain: 96, nTest: 32, seed: 0 }
  valSize: 16
  batchSize: 16
  augment: false
model: { arch: small-cnn }
attack: { steps: 1 }
awp: { warmupEpoch: 2 }
optimizer: { lr: 0.05 }
schedule: { epochs: 2 }
eval: { nExamples: 16, pgdSteps: 2 }
`;

test('end to end: ikl-train writes last/ best/ wa/, ikl-eval evaluates wa/', heavy, () => {
  const cfg = file('tiny.yaml', TINY);
  const runDir = join(tmp, 'e2e');
  const r = cli(['--config', cfg, '--run-dir', runDir, '--log-format', 'json'], { IKL_BACKEND: 'tensorflow' });
  assert.equal(r.status, 0, r.stderr);
  for (const name of ['last', 'best', 'wa']) {
    assert.ok(lstatSync(join(runDir, name)).isSymbolicLink(), `${name} is a link to a generation`);
    assert.ok(existsSync(join(runDir, name, 'checkpoint.json')), `${name}/checkpoint.json`);
  }
  const meta = JSON.parse(readFileSync(join(runDir, 'last', 'checkpoint.json'), 'utf8')) as { epoch: number; configHash: string; arch: string };
  assert.equal(meta.epoch, 2);
  assert.equal(meta.arch, 'small-cnn');
  assert.equal(meta.configHash, configHash(resolveConfig({ file: cfg })));
  assert.equal(readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 2);
  // A finished run is not silently restarted.
  const again = cli(['--config', cfg, '--run-dir', runDir], { IKL_BACKEND: 'tensorflow' });
  assert.equal(again.status, 2);
  assert.match(again.stderr, /already holds a checkpoint/);
  // --resume of a finished run says so, and succeeds without training.
  const finished = cli(['--resume', runDir], { IKL_BACKEND: 'tensorflow' });
  assert.equal(finished.status, 0, finished.stderr);
  assert.ok(finished.stderr.includes(`ikl-train: ${runDir} already finished its 2 epochs; nothing to resume`), finished.stderr);
  assert.equal(readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 2, 'no epoch added');
  // train.log: every line of both runs, NDJSON, numbers rounded to 6 significant digits.
  const log = readFileSync(join(runDir, 'train.log'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const epochs = log.filter((l) => typeof l.msg === 'string' && /^epoch \d\/2$/.test(l.msg));
  assert.equal(epochs.length, 2);
  const fractions = Object.values(epochs[0]!).filter((v): v is number => typeof v === 'number' && !Number.isInteger(v));
  assert.ok(fractions.length > 5 && fractions.every((v) => v === Number(v.toPrecision(6))), `rounded: ${fractions.join(', ')}`);
  assert.ok(log.some((l) => l.msg === 'the run already finished its 2 epochs; nothing to resume'));

  const ev = spawnSync(
    process.execPath,
    [EVAL_BIN, '--checkpoint', join(runDir, 'wa'), '--attack', 'pgd', '--steps', '2', '--n-examples', '16', '--batch-size', '16', '--log-format', 'json'],
    { cwd: tmp, encoding: 'utf8', env: { ...process.env, IKL_BACKEND: 'tensorflow' }, timeout: 120_000 },
  );
  assert.equal(ev.status, 0, ev.stderr);
  const report = JSON.parse(ev.stdout) as { clean_acc: number; robust_acc: number };
  assert.ok(report.robust_acc >= 0 && report.robust_acc <= report.clean_acc && report.clean_acc <= 1, ev.stdout);
});

test('SIGINT: the step finishes, last/ is written, exit 130; --resume finishes the run', heavy, async () => {
  const cfg = file('tiny-long.yaml', TINY.replace('schedule: { epochs: 2 }', 'schedule: { epochs: 3 }'));
  const runDir = join(tmp, 'interrupted');
  const child = spawn(process.execPath, [BIN, '--config', cfg, '--run-dir', runDir, '--log-format', 'json'], {
    cwd: tmp,
    env: { ...process.env, IKL_BACKEND: 'tensorflow' },
  });
  let stderr = '';
  let sent = false;
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    // Interrupt once the loop runs: right after the first epoch's log line (a fixed delay raced the whole run,
    // which takes about 1.5 s once the kernels got faster).
    if (!sent && stderr.includes('"msg":"epoch 1/3"')) {
      sent = true;
      child.kill('SIGINT');
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  assert.ok(sent, `never saw the dataset load: ${stderr}`);
  assert.equal(code, 130, stderr);
  assert.match(stderr, /SIGINT: finishing the current step and writing last/);
  const meta = JSON.parse(readFileSync(join(runDir, 'last', 'checkpoint.json'), 'utf8')) as { epoch: number; step: number };
  assert.ok(meta.step >= 1 && meta.epoch < 3, `stopped early: epoch ${meta.epoch}, step ${meta.step}`);

  const resumed = cli(['--resume', runDir, '--log-format', 'json'], { IKL_BACKEND: 'tensorflow' });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /"msg":"resuming"/);
  const done = JSON.parse(readFileSync(join(runDir, 'last', 'checkpoint.json'), 'utf8')) as { epoch: number };
  assert.equal(done.epoch, 3);
});
