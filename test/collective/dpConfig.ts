import { parseConfig } from '../../src/config/index.js';

/**
 * The data-parallel test's run: small CNN (batch norm), 32 synthetic images with augmentation in 4 global batches
 * of 8, standard training with momentum and weight decay, an evaluation on 10 test images (more tasks than
 * the last evaluation batch has rows is allowed: a task with no rows adds zeros).
 */
export function dataParallelConfig() {
  return parseConfig(
    {
      run: { seed: 11, progress: false },
      data: { dataset: 'synthetic', synthetic: { nTrain: 32, nTest: 10 }, valSize: 0, batchSize: 8, augment: true },
      model: { arch: 'small-cnn', numClasses: 10 },
      objective: { type: 'standard' },
      optimizer: { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 },
      schedule: { epochs: 1 },
      eval: { nExamples: 10, pgdSteps: 1 },
    },
    'data-parallel test config',
  );
}
