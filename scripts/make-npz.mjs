#!/usr/bin/env node
/**
 * Writes a synthetic .npz in the layout of DM-Improves-AT's published generated data (np.savez: image.npy uint8
 * N×32×32×3, label.npy int64), to check a set-up before downloading the real parts, and for tests and benchmarks.
 *
 *   node scripts/make-npz.mjs OUT.npz --n 100000 [--classes 10] [--seed 1] [--unique 10000]
 *
 * Images are the built-in synthetic dataset's (10 learnable shape/texture classes, labels 0..9 whatever
 * --classes says, which only bounds them), generated for the first --unique images and repeated after that, so a multi-GB file is written at disk
 * speed. Needs `npm run build` first (it uses dist/).
 */
import { writeNpz } from '../dist/src/data/npz-write.js';
import { makeSynthetic } from '../dist/src/data/synthetic.js';

const args = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const out = args.find((a, i) => !a.startsWith('--') && (i === 0 || !args[i - 1].startsWith('--')));
const n = flag('--n', 10000);
const classes = flag('--classes', 10);
// Seed 1 by default: the synthetic dataset of the configs uses seed 0, so these images are not copies of its
// training or validation images.
const seed = flag('--seed', 1);
const unique = Math.min(n, flag('--unique', 10000));
if (!out || !Number.isSafeInteger(n) || n < 1 || !Number.isSafeInteger(unique) || unique < 1 || !(classes >= 2)) {
  console.error('usage: node scripts/make-npz.mjs OUT.npz --n N [--classes 10|100] [--seed S] [--unique U]');
  process.exit(2);
}
const base = makeSynthetic({ nTrain: unique, nTest: 0, seed }).train;
const SIZE = 32 * 32 * 3;
const t0 = Date.now();
const { size } = writeNpz(out, {
  n,
  fill(from, count, images, labels) {
    for (let k = 0; k < count; k++) {
      const j = (from + k) % unique;
      images.set(base.images.subarray(j * SIZE, (j + 1) * SIZE), k * SIZE);
      labels[k] = BigInt(base.labels[j] % classes);
    }
  },
});
console.log(`${out}: ${n} images, ${classes} classes, ${(size / 1e9).toFixed(2)} GB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
