/**
 * A prefetch worker thread of BatchLoader: rebuilds the source, sampler and augmentation from their specs once,
 * then makes the batches it is asked for and transfers their arrays back (no copy).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { InputError } from '../errors.js';
import { augmentationFor } from './augmentation.js';
import type { WorkerInit, WorkerReply } from './loader.js';
import { makeBatch } from './pipeline.js';
import { openSampler } from './sampler.js';
import { openSource } from './source.js';

const init = workerData as WorkerInit;
const source = openSource(init.source);
const sampler = openSampler(init.sampler);
const augmentation = augmentationFor(init.augment, source);

parentPort!.on('message', (m: { id: number; epoch: number; batch: number }) => {
  let reply: WorkerReply;
  let transfer: ArrayBuffer[] = [];
  try {
    const b = makeBatch(source, sampler, augmentation, init.seed, m.epoch, m.batch, init.shard);
    reply = { id: m.id, x: b.x, y: b.y, rows: b.rows, globalRows: b.globalRows };
    transfer = [b.x.buffer as ArrayBuffer, b.y.buffer as ArrayBuffer];
  } catch (e) {
    reply = { id: m.id, error: (e as Error).message, input: e instanceof InputError };
  }
  parentPort!.postMessage(reply, transfer);
});
