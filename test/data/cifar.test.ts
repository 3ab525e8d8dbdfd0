import assert from 'node:assert/strict';
import { rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { InputError } from '../../src/errors.js';
import { readCifar10, readCifar100, readExtraData, recordsToNhwc } from '../../src/data/cifar.js';
import { cifarRecords, freshDir, pixelValue, writeCifar10Folder } from './fixtures.js';

/** Asserts the NHWC pixels of image i equal pixelValue(record r, ...) everywhere. */
function assertPixels(images: Uint8Array, i: number, r: number): void {
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      for (let c = 0; c < 3; c++) {
        const got = images[i * 3072 + (y * 32 + x) * 3 + c];
        const want = pixelValue(r, c, y * 32 + x);
        if (got !== want) assert.fail(`image ${i} (y=${y}, x=${x}, c=${c}): ${got} != ${want}`);
      }
    }
  }
}

describe('CIFAR binary readers', () => {
  it('converts a hand-made CHW record to NHWC pixel by pixel', () => {
    // One record: label 7, R plane = 0..255 repeating, G plane = constant 200, B plane = 255 - (p mod 256).
    const rec = new Uint8Array(3073);
    rec[0] = 7;
    for (let p = 0; p < 1024; p++) {
      rec[1 + p] = p & 255;
      rec[1 + 1024 + p] = 200;
      rec[1 + 2048 + p] = 255 - (p & 255);
    }
    const images = new Uint8Array(2 * 3072);
    const labels = new Uint8Array(2);
    recordsToNhwc(rec, 1, 'cifar10', images, labels, 1);
    assert.equal(labels[1], 7);
    assert.ok(
      images.subarray(0, 3072).every((v) => v === 0),
      'record 0 untouched',
    );
    // pixel (y=2, x=5) is p = 69: R 69, G 200, B 186
    assert.deepEqual(Array.from(images.subarray(3072 + 69 * 3, 3072 + 69 * 3 + 3)), [69, 200, 186]);
    for (let p = 0; p < 1024; p++) {
      const o = 3072 + p * 3;
      assert.equal(images[o], p & 255);
      assert.equal(images[o + 1], 200);
      assert.equal(images[o + 2], 255 - (p & 255));
    }
  });

  it('reads a cifar-10-batches-bin folder (5 training batches in order, then the test batch)', async () => {
    const dir = join(freshDir('c10'), 'cifar-10-batches-bin');
    const { trainLabels, testLabels } = writeCifar10Folder(dir, 3, 4);
    const { train, test } = await readCifar10(dir, { recordsPerBatch: 3, testRecords: 4 });
    assert.equal(train.n, 15);
    assert.equal(test.n, 4);
    assert.deepEqual([train.height, train.width, train.channels, train.numClasses], [32, 32, 3, 10]);
    assert.deepEqual(Array.from(train.labels), trainLabels);
    assert.deepEqual(Array.from(test.labels), testLabels);
    assert.equal(train.images.length, 15 * 3072);
    for (let i = 0; i < 15; i++) assertPixels(train.images, i, i);
    for (let i = 0; i < 4; i++) assertPixels(test.images, i, i);
    assert.equal(train.coarseLabels, undefined);
  });

  it('reads cifar-100-binary with fine labels as classes and keeps the coarse labels', async () => {
    const dir = freshDir('c100');
    const fine = [0, 99, 42, 17, 63];
    const coarse = [19, 0, 3, 7, 11];
    writeFileSync(join(dir, 'train.bin'), cifarRecords(fine, coarse));
    writeFileSync(join(dir, 'test.bin'), cifarRecords([5, 98], [1, 2]));
    const { train, test } = await readCifar100(dir, { trainRecords: 5, testRecords: 2 });
    assert.equal(train.numClasses, 100);
    assert.deepEqual(Array.from(train.labels), fine);
    assert.deepEqual(Array.from(train.coarseLabels!), coarse);
    assert.deepEqual(Array.from(test.labels), [5, 98]);
    for (let i = 0; i < 5; i++) assertPixels(train.images, i, i);
  });

  it('checks the official sizes by default and names the file and the expected size', async () => {
    const dir = join(freshDir('c10'), 'cifar-10-batches-bin');
    writeCifar10Folder(dir, 3, 4);
    await assert.rejects(readCifar10(dir), (e: Error) => {
      assert.ok(e instanceof InputError);
      assert.equal(e.message, `${join(dir, 'data_batch_1.bin')}: expected 30730000 bytes (10000 records of 3073), found 9219`);
      return true;
    });
  });

  it('rejects a truncated file, naming it', async () => {
    const dir = join(freshDir('c10'), 'cifar-10-batches-bin');
    writeCifar10Folder(dir, 3, 4);
    truncateSync(join(dir, 'data_batch_3.bin'), 1234);
    await assert.rejects(readCifar10(dir, { recordsPerBatch: 3, testRecords: 4 }), {
      name: 'InputError',
      message: `${join(dir, 'data_batch_3.bin')}: expected 9219 bytes (3 records of 3073), found 1234`,
    });
  });

  it('rejects a missing file, naming it', async () => {
    const dir = join(freshDir('c10'), 'cifar-10-batches-bin');
    writeCifar10Folder(dir, 3, 4);
    rmSync(join(dir, 'test_batch.bin'));
    await assert.rejects(readCifar10(dir, { recordsPerBatch: 3, testRecords: 4 }), (e: Error) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /test_batch\.bin: missing \(expected the CIFAR-10 binary release/);
      assert.ok(e.message.startsWith(join(dir, 'test_batch.bin')));
      return true;
    });
  });

  it('rejects labels out of range (fine and coarse), naming the file and the record', async () => {
    const dir = join(freshDir('c10'), 'cifar-10-batches-bin');
    writeCifar10Folder(dir, 3, 4);
    writeFileSync(join(dir, 'data_batch_4.bin'), cifarRecords([1, 10, 2]));
    await assert.rejects(readCifar10(dir, { recordsPerBatch: 3, testRecords: 4 }), {
      name: 'InputError',
      message: `${join(dir, 'data_batch_4.bin')}: record 1 has label 10, expected 0..9`,
    });

    const d100 = freshDir('c100');
    writeFileSync(join(d100, 'train.bin'), cifarRecords([1, 2], [3, 4]));
    writeFileSync(join(d100, 'test.bin'), cifarRecords([1, 100], [0, 0]));
    await assert.rejects(readCifar100(d100, { trainRecords: 2, testRecords: 2 }), {
      message: `${join(d100, 'test.bin')}: record 1 has label 100, expected 0..99`,
    });
    writeFileSync(join(d100, 'test.bin'), cifarRecords([1, 2], [0, 20]));
    await assert.rejects(readCifar100(d100, { trainRecords: 2, testRecords: 2 }), {
      message: `${join(d100, 'test.bin')}: record 1 has coarse label 20, expected 0..19`,
    });
  });

  it('reads extra training data of any length in either layout', async () => {
    const dir = freshDir('extra');
    const f10 = join(dir, 'gen10.bin');
    writeFileSync(f10, cifarRecords([3, 1, 4, 1, 5, 9, 2]));
    const e10 = await readExtraData(f10, 10);
    assert.equal(e10.n, 7);
    assert.deepEqual(Array.from(e10.labels), [3, 1, 4, 1, 5, 9, 2]);
    for (let i = 0; i < 7; i++) assertPixels(e10.images, i, i);

    const f100 = join(dir, 'gen100.bin');
    writeFileSync(f100, cifarRecords([77, 12], [3, 4]));
    const e100 = await readExtraData(f100, 100);
    assert.deepEqual(Array.from(e100.labels), [77, 12]);
    assert.equal(e100.numClasses, 100);

    // 2 cifar100 records read as cifar10 layout are not a whole number of 3,073-byte records
    await assert.rejects(readExtraData(f100, 10), {
      name: 'InputError',
      message: `${f100}: expected a positive multiple of 3073 bytes (cifar10 records), found 6148`,
    });
    await assert.rejects(readExtraData(join(dir, 'nope.bin'), 10), /nope\.bin: missing/);
  });
});
