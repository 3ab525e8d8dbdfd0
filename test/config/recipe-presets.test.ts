/** The generated-data presets (DM-Improves-AT's recipe) and the constraints of the recipe's keys. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig, resolveConfig, trainConfigSchema } from '../../src/config/index.js';
import { InputError } from '../../src/errors.js';

const CONFIGS = fileURLToPath(new URL('../../../configs/', import.meta.url));

test('every preset in configs/ (kd/ included) parses with the schema', () => {
  const files = [
    ...readdirSync(CONFIGS).filter((f) => f.endsWith('.yaml')),
    ...readdirSync(join(CONFIGS, 'kd'))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => join('kd', f)),
  ];
  assert.ok(files.includes('cifar10-20m-ikl-at.yaml') && files.includes('cifar100-50m-ikl-at.yaml') && files.includes('cifar10-1m-trades.yaml'));
  for (const f of files) {
    const c = resolveConfig({ file: join(CONFIGS, f) });
    assert.ok(trainConfigSchema.safeParse(c).success, f);
  }
});

test('generated-data presets: the paper’s alpha/beta/T on the DM-Improves-AT recipe; the TRADES baseline is its README run', () => {
  const c10 = resolveConfig({ file: join(CONFIGS, 'cifar10-20m-ikl-at.yaml') });
  const c100 = resolveConfig({ file: join(CONFIGS, 'cifar100-50m-ikl-at.yaml') });
  const trades = resolveConfig({ file: join(CONFIGS, 'cifar10-1m-trades.yaml') });
  assert.deepEqual([c10.objective.alpha, c10.objective.beta, c10.classWeights.temperature, c10.model.numClasses], [3, 10, 4, 10]);
  assert.deepEqual([c100.objective.alpha, c100.objective.beta, c100.classWeights.temperature, c100.model.numClasses], [5, 12, 4, 100]);
  assert.deepEqual(c10.data.extra?.files?.length, 2);
  assert.deepEqual(c100.data.extra?.files?.length, 4);
  assert.deepEqual(
    [trades.objective.type, trades.objective.tradesBeta, trades.data.batchSize, trades.schedule.epochs, trades.optimizer.lr, trades.data.extra?.ratio],
    ['trades', 5, 512, 400, 0.2, 0.7],
  );
  for (const c of [c10, c100, trades]) {
    assert.equal(c.model.arch, 'wrn-28-10-swish');
    assert.equal(c.objective.labelSmoothing, 0.1);
    assert.equal(c.objective.passOrder, 'clean-first');
    assert.deepEqual(
      [c.attack.start, c.attack.steps, c.attack.stepSize, c.attack.epsilon, c.attack.schedule, c.attack.bnMode],
      ['uniform', 10, { absolute: 2 / 255 }, 8 / 255, 'constant', 'train'],
    );
    assert.deepEqual([c.optimizer.nesterov, c.optimizer.bnWeightDecay, c.optimizer.weightDecay, c.schedule.type], [true, false, 5e-4, 'onecycle']);
    assert.deepEqual(c.schedule.oneCycle, { pctStart: 0.025, divFactor: 25, finalDivFactor: 1e4, cycleMomentum: true, baseMomentum: 0.85, maxMomentum: 0.95 });
    const wa = c.weightAverage;
    assert.deepEqual([wa.enabled, wa.perStep, wa.stepTau, wa.burnIn, wa.dynamicDecay, wa.bnStatistics], [true, true, 0.995, 0.025, true, 'model']);
    assert.deepEqual([c.awp.enabled, c.model.bnWarmStart, c.data.valSize], [false, true, 1024]);
  }
});

test('the recipe keys default to the behaviour of before', () => {
  const c = parseConfig({}, 'empty');
  assert.deepEqual(
    [c.objective.passOrder, c.objective.labelSmoothing, c.attack.bnMode, c.optimizer.bnWeightDecay, c.model.bnMomentum, c.model.bnWarmStart, c.schedule.type],
    ['adversarial-first', 0, 'inference', true, undefined, false, 'cosine'],
  );
  assert.deepEqual([c.weightAverage.burnIn, c.weightAverage.dynamicDecay, c.weightAverage.bnStatistics], [0, false, 'average']);
});

test('recipe constraints: onecycle has its own warm-up; data.extra takes file or files, not both', () => {
  assert.throws(
    () => parseConfig({ schedule: { type: 'onecycle', warmupEpochs: 5 } }, 'x.yaml'),
    (e: Error) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /schedule\.warmupEpochs: expected 0 with schedule\.type onecycle/);
      return true;
    },
  );
  assert.throws(() => parseConfig({ data: { extra: { file: 'a.bin', files: ['b.npz'] } } }, 'x.yaml'), /data\.extra: expected exactly one of file or files/);
  assert.throws(() => parseConfig({ data: { extra: { ratio: 0.5 } } }, 'x.yaml'), /data\.extra: expected exactly one of file or files/);
  assert.throws(() => parseConfig({ data: { extra: { files: [] } } }, 'x.yaml'), /data\.extra\.files: expected at least one file/);
  assert.equal(parseConfig({ data: { extra: { files: ['a.npz', 'b.npz'] } } }, 'x.yaml').data.extra?.files?.length, 2);
});
