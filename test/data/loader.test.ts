import assert from 'node:assert/strict';
import { truncateSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { noLeak } from '../helpers.js';
import { InputError } from '../../src/errors.js';
import { BatchLoader } from '../../src/data/loader.js';
import type { AugmentationName } from '../../src/data/augment.js';
import { writeNpz } from '../../src/data/npz-write.js';
import { EpochSampler, MixedSampler } from '../../src/data/sampler.js';
import { ConcatSource, MemorySource, openParts } from '../../src/data/source.js';
import { freshDir, indexedSet } from './fixtures.js';

const SIZE = 32 * 32 * 3;

function npzPart(dir: string, name: string, n: number, first: number): string {
  const file = join(dir, name);
  writeNpz(file, {
    n,
    chunk: 16,
    fill: (from, count, images, labels) => {
      for (let k = 0; k < count; k++) {
        const i = first + from + k;
        for (let q = 0; q < SIZE; q++) images[k * SIZE + q] = (i * 11 + q * 3) & 255;
        images[k * SIZE] = 200 + (i % 50); // marks generated images
        labels[k] = BigInt(i % 10);
      }
    },
  });
  return file;
}

interface Pulled {
  index: number;
  x: Float32Array;
  y: Int32Array;
}

async function pullEpoch(loader: BatchLoader, epoch: number, startBatch = 0): Promise<Pulled[]> {
  const out: Pulled[] = [];
  for await (const b of loader.epoch(epoch, startBatch)) {
    out.push({ index: b.index, x: b.x.dataSync() as Float32Array, y: b.y.dataSync() as Int32Array });
    tf.dispose([b.x, b.y]);
  }
  return out;
}

function mixedLoader(files: string[], workers: number, augment: AugmentationName | boolean = 'crop-flip'): BatchLoader {
  const real = new MemorySource(indexedSet(90), { shared: workers > 0 });
  const extra = openParts(files, 10);
  const sampler = new MixedSampler({ kind: 'mixed', nReal: 90, nExtra: extra.n, batchSize: 16, fraction: 0.7, numBatches: 7, seed: 3 });
  return new BatchLoader(new ConcatSource([real, extra]), sampler, { workers, augment, seed: 3 });
}

describe('BatchLoader', () => {
  const dir = freshDir('loader');
  const files = [npzPart(dir, 'p1.npz', 40, 0), npzPart(dir, 'p2.npz', 25, 40)];

  it('worker threads give exactly the main thread batches, across epochs and from a resume point', async () => {
    await noLeak(async () => {
      const inline = mixedLoader(files, 0);
      const threaded = mixedLoader(files, 2);
      try {
        for (const epoch of [1, 2]) {
          const a = await pullEpoch(inline, epoch);
          const b = await pullEpoch(threaded, epoch);
          assert.equal(a.length, 7);
          assert.deepEqual(
            b.map((p) => p.index),
            [0, 1, 2, 3, 4, 5, 6],
          );
          a.forEach((p, i) => {
            assert.deepEqual(b[i]!.y, p.y, `epoch ${epoch} batch ${i} labels`);
            assert.deepEqual(b[i]!.x, p.x, `epoch ${epoch} batch ${i} images`);
          });
          // 11 of 16 generated (floor(16 · 0.7)): after crop/flip the generated mark (byte 0 ≥ 200) may move, so
          // count by labels' source instead: the host batch of the loader.
          const host = inline.hostBatch(epoch, 0);
          assert.deepEqual(host.y, a[0]!.y);
          const resumed = await pullEpoch(threaded, epoch, 4);
          assert.deepEqual(
            resumed.map((p) => p.x),
            a.slice(4).map((p) => p.x),
          );
        }
      } finally {
        await inline.close();
        await threaded.close();
      }
    });
  });

  it('reads the generated images from the parts, 11 of 16 per batch (without augmentation)', async () => {
    const loader = mixedLoader(files, 1, 'none');
    try {
      const batches = await noLeak(() => pullEpoch(loader, 0));
      for (const b of batches) {
        let generated = 0;
        for (let k = 0; k < 16; k++) {
          const first = Math.round(b.x[k * SIZE]! * 255);
          if (first >= 200) {
            generated++;
            const i = first - 200; // i mod 50 of the generated image; its label is i mod 10
            assert.equal(b.y[k], i % 10);
          }
        }
        assert.equal(generated, 11, `batch ${b.index}`);
      }
    } finally {
      await loader.close();
    }
  });

  it('stopping early leaves no tensor behind, prefetched batches included, and close() ends the workers', async () => {
    await noLeak(async () => {
      const loader = new BatchLoader(
        new MemorySource(indexedSet(64), { shared: true }),
        new EpochSampler({ kind: 'epoch', n: 64, batchSize: 8, shuffle: true, dropLast: false, seed: 0 }),
        {
          workers: 2,
          prefetch: 6,
          augment: true,
          seed: 0,
        },
      );
      for await (const b of loader.epoch(0)) {
        tf.dispose([b.x, b.y]);
        if (b.index === 1) break;
      }
      await loader.close();
    });
  });

  it('a read error in a worker reaches the trainer as the InputError it is', async () => {
    const d = freshDir('loader-err');
    const f = npzPart(d, 'p.npz', 40, 0);
    const loader = mixedLoader([f], 1);
    try {
      truncateSync(f, 2000); // the part shrinks after it was opened and checked
      await assert.rejects(
        () => pullEpoch(loader, 0),
        (e: Error) => e instanceof InputError && /p\.npz: file shrank/.test(e.message),
      );
    } finally {
      await loader.close();
    }
  });
});
