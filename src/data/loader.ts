/**
 * Who reads, and when (PyTorch's `DataLoader`): `BatchLoader` turns a source, a sampler and an augmentation into
 * the tensors of each training batch. With `workers: 0` every batch is made in the main thread when it is asked
 * for; with `workers: W` (worker_threads) up to `prefetch` batches are read and augmented ahead, in parallel with
 * the training step, and handed over as transferred typed arrays: the step then never waits for data. Both give
 * the same bytes (every batch is a pure function of (seed, epoch, batch)); only the float tensors are made on the
 * main thread, when a batch is yielded, so a loop that stops early leaves no tensor behind.
 *
 * Prefetching runs across the epoch boundary: after the last batch of epoch e is requested, the first batches
 * of epoch e+1 are.
 */
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import type { AugmentationName } from './augment.js';
import { augmentationFor, type Augmentation, type AugmentSpec } from './augmentation.js';
import { makeBatch, type HostBatch, type Shard } from './pipeline.js';
import type { BatchSampler } from './sampler.js';
import type { ImageSource } from './source.js';
import type { Batch } from './types.js';

export interface LoaderOptions {
  /** Worker threads reading and augmenting ahead; 0: each batch is made in the main thread when asked for. */
  workers: number;
  /** Batches made ahead (with workers > 0). Default 2 per worker. */
  prefetch?: number;
  /** data.augment: a policy of AUGMENTATIONS, or true (crop-flip) / false (none). */
  augment: boolean | AugmentationName;
  /** The second view's policy of an augmentation pair (data.pair); omitted: one view. */
  pair?: AugmentationName;
  seed: number;
  /** This task's share of every batch in a data-parallel run (makeBatch); omitted: the whole batch. */
  shard?: Shard;
}

/** What a worker is told once (see worker.ts). */
export interface WorkerInit {
  source: ReturnType<ImageSource['spec']>;
  sampler: ReturnType<BatchSampler['spec']>;
  augment: AugmentSpec;
  seed: number;
  shard?: Shard;
}

/** A worker's answer for one batch. */
export type WorkerReply = { id: number; x: Float32Array; y: Int32Array; rows: number; globalRows: number } | { id: number; error: string; input: boolean };

interface Pending {
  promise: Promise<HostBatch>;
}

export class BatchLoader {
  readonly numBatches: number;
  private readonly augmentation: Augmentation;
  private readonly augment: AugmentSpec;
  private readonly workers: Worker[] = [];
  private readonly waiting = new Map<number, { resolve: (b: HostBatch) => void; reject: (e: Error) => void }>();
  private readonly ahead = new Map<string, Pending>();
  private readonly prefetch: number;
  private nextId = 0;
  private turn = 0;
  private failed: Error | undefined;

  constructor(
    readonly source: ImageSource,
    readonly sampler: BatchSampler,
    private readonly opts: LoaderOptions,
  ) {
    this.numBatches = sampler.numBatches;
    this.augment = opts.pair === undefined ? { augment: opts.augment } : { augment: opts.augment, pair: opts.pair };
    this.augmentation = augmentationFor(this.augment, source);
    this.prefetch = Math.max(1, opts.prefetch ?? 2 * opts.workers);
    if (opts.workers > 0) {
      const init: WorkerInit = {
        source: source.spec(),
        sampler: sampler.spec(),
        augment: this.augment,
        seed: opts.seed,
        ...(opts.shard ? { shard: opts.shard } : {}),
      };
      for (let w = 0; w < opts.workers; w++) {
        const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: init });
        worker.on('message', (m: WorkerReply) => this.reply(m));
        worker.on('error', (e) => this.fail(e));
        worker.on('exit', (code) => {
          if (code !== 0) this.fail(new Error(`data worker exited with code ${code}`));
        });
        this.workers.push(worker);
      }
    }
  }

  private reply(m: WorkerReply): void {
    const w = this.waiting.get(m.id);
    if (!w) return;
    this.waiting.delete(m.id);
    if ('error' in m) w.reject(m.input ? new InputError(m.error) : new Error(m.error));
    else w.resolve({ x: m.x, y: m.y, rows: m.rows, globalRows: m.globalRows });
  }

  private fail(e: Error): void {
    this.failed ??= e;
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
  }

  /** Starts making batch (epoch, batch) in a worker, once. */
  private request(epoch: number, batch: number): Pending {
    const key = `${epoch}:${batch}`;
    let p = this.ahead.get(key);
    if (!p) {
      const id = this.nextId++;
      const worker = this.workers[this.turn++ % this.workers.length]!;
      const promise = new Promise<HostBatch>((resolve, reject) => {
        if (this.failed) return reject(this.failed);
        this.waiting.set(id, { resolve, reject });
        worker.postMessage({ id, epoch, batch });
      });
      promise.catch(() => {}); // observed when awaited; a batch never awaited must not crash the process
      p = { promise };
      this.ahead.set(key, p);
    }
    return p;
  }

  /** The host arrays of one batch, made in this thread (what the workers compute). */
  hostBatch(epoch: number, batch: number): HostBatch {
    return makeBatch(this.source, this.sampler, this.augmentation, this.opts.seed, epoch, batch, this.opts.shard);
  }

  /** The batches of epoch `epoch` from `startBatch` on. The caller disposes each batch's x and y. */
  async *epoch(epoch: number, startBatch = 0): AsyncGenerator<Batch, void, undefined> {
    const shape = [this.source.height, this.source.width, this.source.channels] as const;
    for (let i = startBatch; i < this.numBatches; i++) {
      let host: HostBatch;
      if (this.workers.length === 0) {
        host = this.hostBatch(epoch, i);
      } else {
        // Keep `prefetch` batches in flight, running on into the next epoch.
        for (let k = 0, e = epoch, j = i; k < this.prefetch; k++) {
          this.request(e, j);
          if (++j === this.numBatches) {
            e++;
            j = 0;
          }
        }
        const key = `${epoch}:${i}`;
        const p = this.ahead.get(key)!;
        host = await p.promise;
        this.ahead.delete(key);
      }
      yield {
        x: tf.tensor4d(host.x, [host.rows, ...shape], 'float32'),
        y: tf.tensor1d(host.y, 'int32'),
        index: i,
        globalSize: host.globalRows,
      };
    }
  }

  /** Stops the workers (they keep the process alive until then) and closes the source's files. */
  async close(): Promise<void> {
    this.ahead.clear();
    this.fail(new Error('loader closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
    this.source.close();
  }
}
