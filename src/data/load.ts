/** One entry point from a dataset name to in-memory train and test sets. */
import { performance } from 'node:perf_hooks';
import { InputError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { CIFAR10_TEST_FILE, CIFAR100_TEST_FILE, readCifar10, readCifar100, readCifar10Test, readCifar100Test } from './cifar.js';
import { ensureCifar, type EnsureCifarOptions } from './download.js';
import { makeSynthetic } from './synthetic.js';
import { DATASETS, type DatasetName, type ImageSet, type SyntheticOptions } from './types.js';

/** Sizes of the synthetic dataset when none are given. */
export const SYNTHETIC_DEFAULTS: SyntheticOptions = { nTrain: 10_000, nTest: 2_000, seed: 0 };

export interface LoadDatasetOptions extends Omit<EnsureCifarOptions, 'logger'> {
  /** Folder holding cifar-10-batches-bin/ and cifar-100-binary/ (or their archives). Default 'data'. */
  dataDir?: string;
  /** Sizes and seed of the synthetic dataset (defaults: SYNTHETIC_DEFAULTS). */
  synthetic?: Partial<SyntheticOptions>;
  logger?: Logger;
}

export async function loadDataset(name: DatasetName, opts: LoadDatasetOptions = {}): Promise<{ train: ImageSet; test: ImageSet }> {
  const log = opts.logger ?? silentLogger;
  const t0 = performance.now();
  let out: { train: ImageSet; test: ImageSet };
  if (name === 'synthetic') {
    out = makeSynthetic({ ...SYNTHETIC_DEFAULTS, ...opts.synthetic });
  } else if (name === 'cifar10' || name === 'cifar100') {
    const dir = await ensureCifar(name, opts.dataDir ?? 'data', { ...opts, logger: log });
    out = name === 'cifar10' ? await readCifar10(dir) : await readCifar100(dir);
  } else {
    throw new InputError(`dataset: expected one of ${DATASETS.join('|')}, got '${String(name)}'`);
  }
  log.info({ dataset: name, train: out.train.n, test: out.test.n, ms: Math.round(performance.now() - t0) }, 'dataset loaded');
  return out;
}

/**
 * The test set alone: an evaluation reads (and needs present and intact) only the test file, so a missing or
 * bad training file does not block it.
 */
export async function loadTestSet(name: DatasetName, opts: LoadDatasetOptions = {}): Promise<ImageSet> {
  const log = opts.logger ?? silentLogger;
  if (name === 'synthetic') return makeSynthetic({ ...SYNTHETIC_DEFAULTS, ...opts.synthetic, nTrain: 1 }).test;
  if (name !== 'cifar10' && name !== 'cifar100') throw new InputError(`dataset: expected one of ${DATASETS.join('|')}, got '${String(name)}'`);
  const needed = [name === 'cifar10' ? CIFAR10_TEST_FILE : CIFAR100_TEST_FILE];
  const dir = await ensureCifar(name, opts.dataDir ?? 'data', { ...opts, logger: log, needed });
  const test = name === 'cifar10' ? await readCifar10Test(dir) : await readCifar100Test(dir);
  log.info({ dataset: name, test: test.n }, 'test set loaded');
  return test;
}
