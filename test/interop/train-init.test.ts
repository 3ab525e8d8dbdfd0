/** `model.initFrom` / `ikl-train --init-from`: training starts from the given PyTorch weights. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { planTraining } from '../../src/cli/train.js';
import { parseConfig } from '../../src/config/index.js';
import { exportModel } from '../../src/interop/index.js';
import { createModel } from '../../src/models/index.js';
import { train } from '../../src/train/index.js';
import { tempDir } from '../eval/fixture.js';
import { heavy } from '../helpers.js';

test('--init-from is model.initFrom in the config (and so in its hash)', async () => {
  const p = await planTraining({ set: [], progress: true, initFrom: 'released.pt' });
  assert.equal(p.config.model.initFrom, 'released.pt');
  assert.equal((await planTraining({ set: [], progress: true })).config.model.initFrom, undefined);
});

test('a run with model.initFrom starts from those weights (kernels after a step of lr 1e-30 equal the file)', heavy, async () => {
  const dir = tempDir('ikl-interop-train-');
  const src = createModel({ arch: 'small-cnn', numClasses: 10, seed: 123 });
  const file = join(dir, 'init.safetensors');
  await exportModel(src, 'small-cnn', file);
  const kernels = (m: typeof src): Float32Array[] => m.weights.filter((w) => w.shape.length === 4).map((w) => w.read().dataSync() as Float32Array);
  const want = kernels(src);
  src.dispose();
  const config = (initFrom?: string) =>
    parseConfig(
      {
        run: { seed: 7, progress: false },
        data: { dataset: 'synthetic', synthetic: { nTrain: 32, nTest: 16 }, valSize: 16, batchSize: 16 },
        model: { arch: 'small-cnn', numClasses: 10, ...(initFrom ? { initFrom } : {}) },
        objective: { type: 'standard' },
        optimizer: { lr: 1e-30 },
        schedule: { epochs: 1 },
        eval: { nExamples: 16, pgdSteps: 1 },
      },
      'test config',
    );
  const firstStep = async (initFrom: string | undefined, runDir: string): Promise<Float32Array[]> => {
    let got: Float32Array[] | undefined;
    await train(config(initFrom), { runDir, onStep: (_info, t) => void (got ??= kernels(t.model)) });
    return got!;
  };
  const withInit = await firstStep(file, join(dir, 'a'));
  withInit.forEach((k, i) => assert.deepEqual(k, want[i]));
  const without = await firstStep(undefined, join(dir, 'b'));
  assert.notDeepEqual(without[0], want[0]);
});
