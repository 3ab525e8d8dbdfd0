import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import {
  configHash,
  configToYaml,
  jsonSchemaText,
  parseConfig,
  parseNumberExpr,
  resolveConfig,
  SCHEMA_PATH,
  trainConfigSchema,
} from '../../src/config/index.js';
import { InputError } from '../../src/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'ikl-config-'));
const CONFIGS = fileURLToPath(new URL('../../../configs/', import.meta.url));

function file(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

/** Asserts resolveConfig throws an InputError whose message matches every pattern. */
function rejects(opts: Parameters<typeof resolveConfig>[0], ...patterns: RegExp[]): string {
  let message = '';
  assert.throws(
    () => resolveConfig(opts),
    (e: unknown) => {
      assert.ok(e instanceof InputError, `expected InputError, got ${String(e)}`);
      message = e.message;
      return true;
    },
  );
  assert.ok(!message.includes('\n'), `one-line message: ${message}`);
  for (const p of patterns) assert.match(message, p);
  return message;
}

test('defaults are the published CIFAR-10 IKL-AT recipe and every field is filled in', () => {
  const c = resolveConfig();
  assert.equal(c.model.arch, 'wrn-34-10');
  assert.equal(c.model.numClasses, 10);
  assert.equal(c.objective.alpha, 3);
  assert.equal(c.objective.beta, 20);
  assert.equal(c.classWeights.temperature, 4);
  assert.equal(c.attack.epsilon, 8 / 255);
  assert.deepEqual(c.attack.stepSize, { relative: 0.5 });
  assert.equal(c.attack.steps, 5);
  assert.equal(c.attack.schedule, 'linear');
  assert.equal(c.schedule.epochs, 200);
  assert.equal(c.optimizer.lr, 0.2);
  assert.equal(c.optimizer.weightDecay, 5e-4);
  assert.equal(c.awp.gamma, 0.005);
  assert.equal(c.awp.warmupEpoch, 10);
  assert.equal(c.weightAverage.tau, 0.9);
  assert.equal(c.eval.pgdStepSize, 2 / 255);
  assert.equal(c.data.batchSize, 128);
});

test('every schema field is described and has a default (the schema is the documentation)', () => {
  const schema = JSON.parse(jsonSchemaText()) as {
    properties: Record<string, { description?: string; default?: unknown; properties?: Record<string, { description?: string; default?: unknown }> }>;
  };
  const optionalWithoutDefault = new Set([
    'data.trainSubset',
    'data.extra',
    'data.extra.file',
    'data.extra.files',
    'model.numClasses',
    'model.initFrom',
    'model.bnMomentum',
    'teacher.checkpoint',
    'teacher.arch',
    'distill.ceWeight',
  ]);
  for (const [name, sec] of Object.entries(schema.properties)) {
    assert.ok(sec.description, `${name} has a description`);
    assert.notEqual(sec.default, undefined, `${name} has a default`);
    for (const [key, field] of Object.entries(sec.properties ?? {})) {
      assert.ok(field.description, `${name}.${key} has a description`);
      if (!optionalWithoutDefault.has(`${name}.${key}`)) assert.notEqual(field.default, undefined, `${name}.${key} has a default`);
    }
  }
});

test('precedence: defaults < file < --set, later --set wins', () => {
  const f = file('p.yaml', 'attack:\n  steps: 7\n  epsilon: 4/255\noptimizer:\n  lr: 0.1\n');
  const fromFile = resolveConfig({ file: f });
  assert.equal(fromFile.attack.steps, 7);
  assert.equal(fromFile.attack.epsilon, 4 / 255);
  assert.equal(fromFile.optimizer.lr, 0.1);
  assert.equal(fromFile.optimizer.momentum, 0.9, 'untouched keys keep their defaults');
  const withSets = resolveConfig({ file: f, sets: ['attack.steps=10', 'optimizer.lr=0.05', 'optimizer.lr=0.3'] });
  assert.equal(withSets.attack.steps, 10);
  assert.equal(withSets.attack.epsilon, 4 / 255, 'the file value survives a --set of a sibling');
  assert.equal(withSets.optimizer.lr, 0.3);
});

test('JSON config files are read by extension', () => {
  const f = file('c.json', JSON.stringify({ data: { dataset: 'cifar100' }, attack: { epsilon: '8/255' } }));
  const c = resolveConfig({ file: f });
  assert.equal(c.model.numClasses, 100, 'numClasses derived from the dataset');
  assert.equal(c.attack.epsilon, 8 / 255);
});

test('--set values are typed through the schema (YAML scalars, lists, mappings, strings)', () => {
  const c = resolveConfig({
    sets: [
      'schedule.milestones=[75, 90]',
      'awp.enabled=false',
      'attack.stepSize.absolute=0.007',
      'run.name=2024',
      'attack.epsilon=0.031',
      'data.extra={file: gen.npz}',
    ],
  });
  assert.deepEqual(c.schedule.milestones, [75, 90]);
  assert.equal(c.awp.enabled, false);
  assert.deepEqual(c.attack.stepSize, { absolute: 0.007 }, 'setting one alternative replaces the other');
  assert.equal(c.run.name, '2024', 'a string field keeps the text as written');
  assert.equal(c.attack.epsilon, 0.031);
  assert.deepEqual(c.data.extra, { file: 'gen.npz', ratio: 0.7 });
});

test('errors in a file name the file, the key path, what was expected and what was given', () => {
  rejects({ file: file('neg.yaml', 'attack:\n  steps: -1\n') }, /neg\.yaml: attack\.steps: expected a positive integer, got -1$/);
  rejects({ file: file('type.yaml', 'optimizer:\n  lr: fast\n') }, /type\.yaml: optimizer\.lr: expected a number or a fraction like 8\/255, got 'fast'/);
  rejects({ file: file('range.yaml', 'attack:\n  epsilon: 2\n') }, /range\.yaml: attack\.epsilon: expected a number in \[0, 1\], got 2/);
  rejects(
    { file: file('enum.yaml', 'objective:\n  type: madry\n') },
    /enum\.yaml: objective\.type: expected one of ikl-at\|trades\|pgd-at\|standard\|ikl-kd\|kd\|dkd, got 'madry'/,
  );
  rejects({ file: file('bool.yaml', 'awp:\n  enabled: 3\n') }, /bool\.yaml: awp\.enabled: expected true or false, got 3/);
  rejects({ file: file('unk.yaml', 'attack:\n  stpes: 3\n') }, /unk\.yaml: attack: unknown key 'stpes' \(expected one of: epsilon, schedule, steps, /);
  rejects({ file: file('unktop.yaml', 'atack: {}\n') }, /unktop\.yaml: unknown key 'atack' \(expected one of: run, data, /);
  rejects({ file: file('ss.yaml', 'attack:\n  stepSize: {relative: 0.5, absolute: 0.01}\n') }, /ss\.yaml: attack\.stepSize: expected \{relative: r\}/);
  rejects({ file: file('list.yaml', '- 1\n- 2\n') }, /list\.yaml: expected a mapping of config sections/);
  rejects({ file: file('bad.yaml', 'attack: [\n') }, /bad\.yaml: invalid YAML/);
  rejects({ file: file('bad.json', '{"attack": }') }, /bad\.json: invalid JSON/);
  rejects({ file: file('c.toml', 'x = 1') }, /c\.toml: expected a \.yaml, \.yml or \.json config file/);
  rejects({ file: join(tmp, 'missing.yaml') }, /missing\.yaml: cannot read the config file \(no such file\)/);
});

test('errors in --set name the flag and the key path', () => {
  rejects({ sets: ['attack.steps=-1'] }, /^--set attack\.steps=-1: attack\.steps: expected a positive integer, got -1$/);
  rejects({ sets: ['attack.stepz=3'] }, /^--set attack\.stepz=3: attack: unknown key 'stepz'/);
  rejects({ sets: ['optimizer.momentum=1.5'] }, /^--set optimizer\.momentum=1\.5: optimizer\.momentum: expected a number in \[0, 1\), got 1\.5$/);
  rejects({ sets: ['attack.steps.x=1'] }, /^--set attack\.steps\.x=1: attack\.steps: expected an integer/);
  rejects({ sets: ['steps'] }, /^--set steps: expected key\.path=value/);
  // A file that is valid on its own, broken by a flag: the flag is blamed, not the file.
  const f = file('ok.yaml', 'attack:\n  steps: 3\n');
  rejects({ file: f, sets: ['attack.epsilon=-8/255'] }, /^--set attack\.epsilon=-8\/255: attack\.epsilon: expected a number in \[0, 1\], got '-8\/255'$/);
});

test('data.augment: true, false or a policy name; anything else is refused by name', () => {
  assert.equal(resolveConfig({ sets: ['data.augment=false'] }).data.augment, false);
  assert.equal(resolveConfig({ sets: ['data.augment=autoaugment'] }).data.augment, 'autoaugment');
  assert.equal(resolveConfig({}).data.augment, true);
  rejects({ sets: ['data.augment=autoaug'] }, /^--set data\.augment=autoaug: data\.augment: expected true, false or one of none\|crop-flip\|.*idbh-weak/);
});

test('constraints between fields name the key and the source that set it', () => {
  rejects({ sets: ['model.numClasses=100'] }, /--set model\.numClasses=100: model\.numClasses: expected 10 \(the number of classes of cifar10\)/);
  rejects({ file: file('ms.yaml', 'schedule:\n  milestones: [150, 100]\n') }, /ms\.yaml: schedule\.milestones: expected increasing epochs/);
  rejects(
    { sets: ['data.dataset=synthetic', 'data.valSize=10000'] },
    /--set data\.valSize=10000: data\.valSize: expected fewer validation images than data\.synthetic\.nTrain \(10000\)/,
  );
});

test('--print-config output (configToYaml) re-validates to the same config', () => {
  const c = resolveConfig({ sets: ['data.dataset=cifar100', 'attack.stepSize.absolute=2/255', 'data.trainSubset=100'] });
  const text = configToYaml(c, 'resolved config\nsecond line');
  assert.match(text, /^# resolved config\n# second line\n/);
  const back = parseConfig(parseYaml(text), 'printed');
  assert.deepEqual(back, c);
  const f = file('printed.yaml', text);
  assert.deepEqual(resolveConfig({ file: f }), c);
});

test('configHash: equal configs hash equal regardless of key order; a setting change changes it; log format does not', () => {
  const a = resolveConfig();
  const b = resolveConfig({ sets: ['attack.steps=5'] });
  assert.equal(configHash(a), configHash(b));
  assert.match(configHash(a), /^[0-9a-f]{64}$/);
  const reordered = Object.fromEntries(Object.entries(a).reverse()) as typeof a;
  assert.equal(configHash(reordered), configHash(a));
  assert.notEqual(configHash(resolveConfig({ sets: ['attack.steps=6'] })), configHash(a));
  assert.equal(configHash(resolveConfig({ sets: ['run.logFormat=json', 'run.progress=false'] })), configHash(a));
});

test('parseNumberExpr: decimals, exponents, fractions; garbage names the source', () => {
  assert.equal(parseNumberExpr('8/255', 'x'), 8 / 255);
  assert.equal(parseNumberExpr(' 2e-4 ', 'x'), 2e-4);
  assert.equal(parseNumberExpr('.5', 'x'), 0.5);
  assert.throws(() => parseNumberExpr('8/0', '--eps'), /--eps: expected a number or a fraction/);
  assert.throws(() => parseNumberExpr('eight', '--eps'), /--eps: expected a number or a fraction like 8\/255, got 'eight'/);
});

test('every preset in configs/ validates', () => {
  const presets = readdirSync(CONFIGS).filter((f) => f.endsWith('.yaml'));
  assert.ok(presets.length >= 6, `expected the presets, found ${presets.join(', ')}`);
  for (const p of presets) {
    const c = resolveConfig({ file: join(CONFIGS, p) });
    assert.ok(trainConfigSchema.safeParse(c).success, p);
    assert.match(readFileSync(join(CONFIGS, p), 'utf8'), /^# /, `${p} starts with a header comment`);
  }
});

test('presets reproduce the published runs', () => {
  const c10 = resolveConfig({ file: join(CONFIGS, 'cifar10-ikl-at.yaml') });
  const c100 = resolveConfig({ file: join(CONFIGS, 'cifar100-ikl-at.yaml') });
  for (const c of [c10, c100]) {
    assert.equal(c.model.arch, 'wrn-34-10');
    assert.deepEqual([c.objective.type, c.objective.alpha, c.objective.beta, c.classWeights.temperature], ['ikl-at', 3, 20, 4]);
    assert.deepEqual([c.schedule.epochs, c.schedule.type, c.optimizer.lr, c.optimizer.weightDecay, c.data.batchSize], [200, 'cosine', 0.2, 5e-4, 128]);
    assert.deepEqual([c.awp.enabled, c.awp.gamma, c.awp.warmupEpoch], [true, 0.005, 10]);
    assert.deepEqual([c.attack.schedule, c.attack.epsilon, c.attack.steps, c.attack.stepSize], ['linear', 8 / 255, 5, { relative: 0.5 }]);
    assert.deepEqual([c.weightAverage.enabled, c.weightAverage.tau], [true, 0.9]);
  }
  assert.equal(c10.attack.objective, 'kl');
  assert.deepEqual([c100.attack.objective, c100.attack.alpha, c100.attack.beta, c100.model.numClasses], ['ikl', 1, 1, 100]);
  // DKL's AutoAugment pair (sh/train_dkl_cifar100_autoaug.sh): the CIFAR-100 run with alpha 4, views A/B, gamma 0.3.
  const pair = resolveConfig({ file: join(CONFIGS, 'cifar100-ikl-at-autoaug.yaml') });
  assert.deepEqual({ ...pair, run: c100.run, data: c100.data, objective: c100.objective }, c100);
  assert.deepEqual([pair.objective.alpha, pair.objective.beta, pair.classWeights.temperature], [4, 20, 4]);
  assert.deepEqual([pair.data.augment, pair.data.pair], ['crop-flip', { enabled: true, augment: 'autoaugment', gamma: 0.3 }]);
  const trades = resolveConfig({ file: join(CONFIGS, 'cifar10-trades.yaml') });
  assert.deepEqual(
    [trades.objective.type, trades.objective.tradesBeta, trades.attack.steps, trades.attack.stepSize, trades.attack.epsilon, trades.attack.schedule],
    ['trades', 6, 10, { absolute: 0.007 }, 0.031, 'constant'],
  );
  assert.deepEqual(
    [trades.optimizer.lr, trades.schedule.type, trades.schedule.milestones, trades.schedule.epochs, trades.optimizer.weightDecay],
    [0.1, 'piecewise', [75, 90], 100, 2e-4],
  );
  assert.deepEqual([trades.awp.enabled, trades.weightAverage.enabled], [false, false]);
  const madry = resolveConfig({ file: join(CONFIGS, 'cifar10-pgd-at.yaml') });
  assert.deepEqual(
    [madry.objective.type, madry.attack.objective, madry.attack.start, madry.attack.steps, madry.attack.stepSize],
    ['pgd-at', 'ce', 'uniform', 10, { absolute: 2 / 255 }],
  );
});

test('configs/schema.json is the schema generated from the zod schema (regenerate: ikl-train --schema > configs/schema.json)', () => {
  assert.equal(readFileSync(SCHEMA_PATH, 'utf8'), jsonSchemaText());
});
