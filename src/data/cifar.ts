/**
 * Readers for the official CIFAR binary releases.
 *
 * CIFAR-10 (`cifar-10-batches-bin/`): data_batch_1..5.bin and test_batch.bin, 10,000 records each of 3,073 bytes:
 * label, then the 1,024 R, 1,024 G and 1,024 B values of a 32×32 image (row-major planes).
 * CIFAR-100 (`cifar-100-binary/`): train.bin (50,000) and test.bin (10,000), records of 3,074 bytes:
 * coarse label, fine label, then the same pixel planes. Fine labels are the training targets.
 *
 * The planes are converted to NHWC uint8 while reading, so the rest of the pipeline never sees CHW.
 * Sizes are checked exactly against the official counts; tests pass smaller counts explicitly.
 */
import { open, stat } from 'node:fs/promises';
import { constants as bufferConstants } from 'node:buffer';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { DATASET_CLASSES, type ImageSet } from './types.js';

export type CifarLayout = 'cifar10' | 'cifar100';

export const CIFAR10_DIR = 'cifar-10-batches-bin';
export const CIFAR100_DIR = 'cifar-100-binary';
export const CIFAR10_TRAIN_FILES = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'] as const;
export const CIFAR10_TEST_FILE = 'test_batch.bin';
export const CIFAR100_TRAIN_FILE = 'train.bin';
export const CIFAR100_TEST_FILE = 'test.bin';

const SIDE = 32;
const PLANE = SIDE * SIDE;
const PIXELS = PLANE * 3;
/** Label bytes before the pixel planes. */
const HEADER: Record<CifarLayout, number> = { cifar10: 1, cifar100: 2 };
export const RECORD_BYTES: Record<CifarLayout, number> = { cifar10: 1 + PIXELS, cifar100: 2 + PIXELS };
const CIFAR100_COARSE_CLASSES = 20;
/** Records converted per read: large enough to amortise the syscalls, small enough to stay out of the way (~6 MB). */
const CHUNK_RECORDS = 2048;

/**
 * Converts `count` records from `buf` (CIFAR layout) to NHWC pixels at record `dstRecord` of `images`, and copies
 * their labels. Exported for tests and for callers holding records in memory.
 */
export function recordsToNhwc(
  buf: Uint8Array,
  count: number,
  layout: CifarLayout,
  images: Uint8Array,
  labels: Uint8Array,
  dstRecord: number,
  coarseLabels?: Uint8Array,
): void {
  const rb = RECORD_BYTES[layout];
  const head = HEADER[layout];
  for (let r = 0; r < count; r++) {
    const src = r * rb;
    const k = dstRecord + r;
    // cifar100 stores (coarse, fine); the fine label is the class.
    labels[k] = buf[src + head - 1]!;
    if (coarseLabels) coarseLabels[k] = buf[src]!;
    const red = src + head;
    const green = red + PLANE;
    const blue = green + PLANE;
    let d = k * PIXELS;
    for (let p = 0; p < PLANE; p++, d += 3) {
      images[d] = buf[red + p]!;
      images[d + 1] = buf[green + p]!;
      images[d + 2] = buf[blue + p]!;
    }
  }
}

/**
 * Size of a CIFAR record file in records, checked. `expectedRecords` undefined accepts any positive whole number of
 * records (extra-data files). Missing file or wrong size → InputError naming the file.
 */
async function recordCount(file: string, layout: CifarLayout, expectedRecords: number | undefined, what: string): Promise<number> {
  const rb = RECORD_BYTES[layout];
  let size: number;
  try {
    const s = await stat(file);
    if (!s.isFile()) throw new InputError(`${file}: expected a file (${what}), found a directory or special file`);
    size = s.size;
  } catch (e) {
    if (e instanceof InputError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new InputError(`${file}: missing (expected ${what})`);
    throw e;
  }
  if (expectedRecords !== undefined) {
    if (size !== expectedRecords * rb) {
      throw new InputError(`${file}: expected ${expectedRecords * rb} bytes (${expectedRecords} records of ${rb}), found ${size}`);
    }
    return expectedRecords;
  }
  if (size === 0 || size % rb !== 0) {
    throw new InputError(`${file}: expected a positive multiple of ${rb} bytes (${layout} records), found ${size}`);
  }
  const n = size / rb;
  if (n * PIXELS > bufferConstants.MAX_LENGTH) {
    throw new InputError(
      `${file}: ${n} records exceed what one in-memory array holds (max ${Math.floor(bufferConstants.MAX_LENGTH / PIXELS)}); split the file`,
    );
  }
  return n;
}

/** Reads `n` records of `file` into the arrays at record offset `at`, checking labels as it goes. */
async function readRecordsInto(
  file: string,
  layout: CifarLayout,
  n: number,
  numClasses: number,
  out: { images: Uint8Array; labels: Uint8Array; coarseLabels?: Uint8Array },
  at: number,
): Promise<void> {
  const rb = RECORD_BYTES[layout];
  const buf = new Uint8Array(Math.min(n, CHUNK_RECORDS) * rb);
  const fh = await open(file, 'r');
  try {
    for (let done = 0; done < n;) {
      const count = Math.min(CHUNK_RECORDS, n - done);
      const want = count * rb;
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, done * rb + got);
        if (bytesRead === 0) throw new InputError(`${file}: file shrank while reading (expected ${n * rb} bytes)`);
        got += bytesRead;
      }
      recordsToNhwc(buf, count, layout, out.images, out.labels, at + done, out.coarseLabels);
      checkLabels(file, out.labels, at + done, count, numClasses, done, 'label');
      if (out.coarseLabels) checkLabels(file, out.coarseLabels, at + done, count, CIFAR100_COARSE_CLASSES, done, 'coarse label');
      done += count;
    }
  } finally {
    await fh.close();
  }
}

function checkLabels(file: string, labels: Uint8Array, from: number, count: number, numClasses: number, firstRecord: number, what: string): void {
  for (let i = 0; i < count; i++) {
    const v = labels[from + i]!;
    if (v >= numClasses) {
      throw new InputError(`${file}: record ${firstRecord + i} has ${what} ${v}, expected 0..${numClasses - 1}`);
    }
  }
}

function emptySet(name: string, n: number, numClasses: number, coarse: boolean): ImageSet {
  return {
    name,
    images: new Uint8Array(n * PIXELS),
    labels: new Uint8Array(n),
    ...(coarse ? { coarseLabels: new Uint8Array(n) } : {}),
    n,
    numClasses,
    height: SIDE,
    width: SIDE,
    channels: 3,
  };
}

/** Reads several record files (sizes checked first, so a bad last file fails before any long read). */
async function readFiles(
  name: string,
  files: string[],
  layout: CifarLayout,
  numClasses: number,
  expectedRecords: number | undefined,
  what: string,
): Promise<ImageSet> {
  const counts: number[] = [];
  for (const f of files) counts.push(await recordCount(f, layout, expectedRecords, what));
  const set = emptySet(
    name,
    counts.reduce((a, b) => a + b, 0),
    numClasses,
    layout === 'cifar100',
  );
  let at = 0;
  for (let i = 0; i < files.length; i++) {
    await readRecordsInto(files[i]!, layout, counts[i]!, numClasses, set, at);
    at += counts[i]!;
  }
  return set;
}

export interface Cifar10ReadOptions {
  /** Records per training batch file. Official: 10,000 (tests use fewer). */
  recordsPerBatch?: number;
  /** Records in test_batch.bin. Official: 10,000. */
  testRecords?: number;
}

/** Reads `dir` = a `cifar-10-batches-bin/` folder. */
export async function readCifar10(dir: string, opts: Cifar10ReadOptions = {}): Promise<{ train: ImageSet; test: ImageSet }> {
  const perBatch = opts.recordsPerBatch ?? 10_000;
  const nTest = opts.testRecords ?? 10_000;
  const what = (n: number) => `the CIFAR-10 binary release: ${n} records of ${RECORD_BYTES.cifar10} bytes`;
  const train = await readFiles(
    'cifar10-train',
    CIFAR10_TRAIN_FILES.map((f) => join(dir, f)),
    'cifar10',
    DATASET_CLASSES.cifar10,
    perBatch,
    what(perBatch),
  );
  const test = await readFiles('cifar10-test', [join(dir, CIFAR10_TEST_FILE)], 'cifar10', DATASET_CLASSES.cifar10, nTest, what(nTest));
  return { train, test };
}

/** Only test_batch.bin of a `cifar-10-batches-bin/` folder (what an evaluation needs). */
export async function readCifar10Test(dir: string, opts: Cifar10ReadOptions = {}): Promise<ImageSet> {
  const nTest = opts.testRecords ?? 10_000;
  return readFiles(
    'cifar10-test',
    [join(dir, CIFAR10_TEST_FILE)],
    'cifar10',
    10,
    nTest,
    `the CIFAR-10 binary release: ${nTest} records of ${RECORD_BYTES.cifar10} bytes`,
  );
}

export interface Cifar100ReadOptions {
  /** Records in train.bin. Official: 50,000. */
  trainRecords?: number;
  /** Records in test.bin. Official: 10,000. */
  testRecords?: number;
}

/** Reads `dir` = a `cifar-100-binary/` folder. Labels are the 100 fine classes; coarse labels are kept. */
export async function readCifar100(dir: string, opts: Cifar100ReadOptions = {}): Promise<{ train: ImageSet; test: ImageSet }> {
  const nTrain = opts.trainRecords ?? 50_000;
  const nTest = opts.testRecords ?? 10_000;
  const what = (n: number) => `the CIFAR-100 binary release: ${n} records of ${RECORD_BYTES.cifar100} bytes`;
  const train = await readFiles('cifar100-train', [join(dir, CIFAR100_TRAIN_FILE)], 'cifar100', DATASET_CLASSES.cifar100, nTrain, what(nTrain));
  const test = await readFiles('cifar100-test', [join(dir, CIFAR100_TEST_FILE)], 'cifar100', DATASET_CLASSES.cifar100, nTest, what(nTest));
  return { train, test };
}

/** Only test.bin of a `cifar-100-binary/` folder (what an evaluation needs). */
export async function readCifar100Test(dir: string, opts: Cifar100ReadOptions = {}): Promise<ImageSet> {
  const nTest = opts.testRecords ?? 10_000;
  return readFiles(
    'cifar100-test',
    [join(dir, CIFAR100_TEST_FILE)],
    'cifar100',
    100,
    nTest,
    `the CIFAR-100 binary release: ${nTest} records of ${RECORD_BYTES.cifar100} bytes`,
  );
}

/**
 * Reads an additional training file in CIFAR binary layout (e.g. generated images), any number of records.
 * The layout follows numClasses (100 → 3,074-byte cifar100 records, otherwise 3,073) unless given.
 */
export async function readExtraData(file: string, numClasses: number, opts: { layout?: CifarLayout; name?: string } = {}): Promise<ImageSet> {
  if (!Number.isInteger(numClasses) || numClasses < 2 || numClasses > 256) {
    throw new InputError(`${file}: numClasses must be an integer in 2..256, got ${numClasses}`);
  }
  const layout = opts.layout ?? (numClasses === 100 ? 'cifar100' : 'cifar10');
  return readFiles(opts.name ?? 'extra', [file], layout, numClasses, undefined, `extra training data in ${layout} binary layout`);
}
