/**
 * One task of the data-parallel training test (test/collective/dataParallel.test.ts): runs `train()` with the
 * collective from TF_CONFIG and writes the model's weights after every step to `<out>.<rank>.json`.
 */
import { writeFileSync } from 'node:fs';
import { initBackend } from '../../src/backend.js';
import { createCollective } from '../../src/collective/index.js';
import { train } from '../../src/train/index.js';
import { dataParallelConfig } from './dpConfig.js';

await initBackend('tensorflow');
const [runDir, out] = process.argv.slice(2) as [string, string];
const collective = createCollective({ timeoutSeconds: 60 });
const steps: number[][][] = [];
const result = await train(dataParallelConfig(), {
  runDir,
  collective,
  onStep: (_info, t) => steps.push(t.model.weights.map((w) => Array.from(w.read().dataSync()))),
});
writeFileSync(`${out}.${collective.rank}.json`, JSON.stringify({ steps, metrics: result.metrics }));
process.exit(0);
