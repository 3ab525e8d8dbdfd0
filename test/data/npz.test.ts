import assert from 'node:assert/strict';
import { copyFileSync, openSync, closeSync, readFileSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { InputError } from '../../src/errors.js';
import { readNpzIndex } from '../../src/data/npz.js';
import { crc32, crc32Js, npyHeader, writeNpz } from '../../src/data/npz-write.js';
import { openParts } from '../../src/data/source.js';
import { readExtraData } from '../../src/data/cifar.js';
import { cifarRecords, freshDir } from './fixtures.js';

// Written by numpy itself: scripts/fixtures/npz_fixtures.py.
const FIX = fileURLToPath(new URL('../../../test/fixtures/npz/', import.meta.url));
const SIZE = 32 * 32 * 3;

/** The fixture script's pixels and labels (an independent statement of what numpy wrote). */
const pixel = (i: number, k: number) => (i * 37 + k * 7 + ((k * k) >> 5)) & 255;
const label = (i: number) => (3 * i + 1) % 10;

function readAll(files: Parameters<typeof openParts>[0], numClasses = 10): { images: Uint8Array; labels: number[] } {
  const src = openParts(files, numClasses);
  try {
    const images = new Uint8Array(src.n * SIZE);
    const labels: number[] = [];
    for (let i = 0; i < src.n; i++) labels.push(src.get(i, images, i * SIZE));
    return { images, labels };
  } finally {
    src.close();
  }
}

function assertFixtureImages(images: Uint8Array, from: number, count: number, at = 0): void {
  for (let i = 0; i < count; i++)
    for (let k = 0; k < SIZE; k++)
      if (images[(at + i) * SIZE + k] !== pixel(from + i, k)) assert.fail(`image ${at + i} byte ${k}: ${images[(at + i) * SIZE + k]} != ${pixel(from + i, k)}`);
}

/** The one-line InputError of a refused part. */
function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof InputError, `expected InputError, got ${String(e)}`);
    assert.equal(e.message.split('\n').length, 1, 'one line');
    return e.message;
  }
  return assert.fail('not refused');
}

describe('npz parts written by numpy (np.savez)', () => {
  it('two parts read as one set, byte for byte, labels of any integer dtype', () => {
    const { images, labels } = readAll([join(FIX, 'part1.npz'), join(FIX, 'part2.npz')]);
    assert.equal(labels.length, 12);
    assertFixtureImages(images, 0, 7, 0);
    assertFixtureImages(images, 0, 5, 7); // part 2 restarts the formula at 0
    assert.deepEqual(labels, [...Array.from({ length: 7 }, (_, i) => label(i)), ...Array.from({ length: 5 }, (_, i) => label(i))]);
    for (const f of ['labels-u1.npz', 'labels-be.npz']) assert.deepEqual(readAll([join(FIX, f)]).labels, [1, 4, 7], f);
  });

  it('image.npy + label.npy: as a folder or as { image, label }', () => {
    const dir = readAll([join(FIX, 'pair')]);
    assertFixtureImages(dir.images, 0, 4);
    assert.deepEqual(dir.labels, [1, 4, 7, 0]);
    const pair = readAll([{ image: join(FIX, 'pair', 'image.npy'), label: join(FIX, 'pair', 'label.npy') }]);
    assert.deepEqual(pair.images, dir.images);
  });

  it('members are located by position: offsets from the headers, data never loaded', () => {
    const idx = readNpzIndex(join(FIX, 'part1.npz'));
    const img = idx.get('image')!;
    assert.deepEqual(img.shape, [7, 32, 32, 3]);
    assert.equal(img.descr, '|u1');
    const bytes = readFileSync(join(FIX, 'part1.npz'));
    assert.equal(bytes[img.offset + 5 * SIZE + 100], pixel(5, 100));
    assert.equal(idx.get('label')!.descr, '<i8');
  });

  it('refuses, in one line naming the file and member: compressed, wrong dtype or shape, bad label, missing member', () => {
    const f = (name: string) => join(FIX, name);
    const compressed = refusal(() => openParts([f('compressed.npz')], 10));
    assert.match(compressed, /compressed\.npz: member (image|label)\.npy: compressed .*np\.savez, not np\.savez_compressed/);
    assert.match(
      refusal(() => openParts([f('float-images.npz')], 10)),
      /float-images\.npz: member image\.npy: dtype <f4, expected uint8/,
    );
    assert.match(
      refusal(() => openParts([f('bad-shape.npz')], 10)),
      /bad-shape\.npz: member image\.npy: shape \(3, 32, 96\), expected \(N, 32, 32, 3\)/,
    );
    assert.match(
      refusal(() => openParts([f('bad-label.npz')], 10)),
      /bad-label\.npz: member label\.npy: label 10 at index 1, expected 0\.\.9/,
    );
    assert.match(
      refusal(() => openParts([f('float-labels.npz')], 10)),
      /float-labels\.npz: member label\.npy: dtype <f4, expected integer labels/,
    );
    assert.match(
      refusal(() => openParts([f('no-label.npz')], 10)),
      /no-label\.npz: member label\.npy missing \(found image\.npy\)/,
    );
    // The same labels are fine for 100 classes.
    assert.equal(openParts([f('bad-label.npz')], 100).n, 3);
    assert.match(
      refusal(() => openParts([join(FIX, 'absent.npz')], 10)),
      /absent\.npz: missing/,
    );
  });

  it('refuses a truncated part, naming the file (and the member when the directory survives)', () => {
    const dir = freshDir('npz-trunc');
    const cut = join(dir, 'cut.npz');
    copyFileSync(join(FIX, 'part1.npz'), cut);
    truncateSync(cut, Math.floor(statSync(cut).size / 2));
    assert.match(
      refusal(() => openParts([cut], 10)),
      /cut\.npz: not a zip archive or truncated/,
    );
    // A directory that claims more image bytes than the member holds: keep the headers, drop 3 images.
    const short = join(dir, 'short.npz');
    const whole = readFileSync(join(FIX, 'part1.npz'));
    const img = readNpzIndex(join(FIX, 'part1.npz')).get('image')!;
    writeFileSync(short, whole);
    // Rewrite the .npy header of image.npy to claim 9 images instead of 7 (same header length).
    const head = whole.toString('latin1', img.offset - 128, img.offset);
    const at = head.indexOf('(7, 32');
    const patched = Buffer.from(whole);
    patched.write('(9, 32', img.offset - 128 + at, 'latin1');
    writeFileSync(short, patched);
    assert.match(
      refusal(() => openParts([short], 10)),
      /short\.npz: member image\.npy: truncated/,
    );
  });

  it('CIFAR binary records still work as a part, equal to the in-memory reader', async () => {
    const dir = freshDir('npz-cifar');
    const file = join(dir, 'gen.bin');
    writeFileSync(file, cifarRecords([3, 1, 4, 1, 5]));
    const mem = await readExtraData(file, 10);
    const got = readAll([file]);
    assert.deepEqual(got.labels, Array.from(mem.labels));
    assert.deepEqual(got.images, mem.images);
  });
});

describe('npz written by writeNpz (scripts/make-npz.mjs)', () => {
  it('round-trips, with the zip64 end records numpy writes past 4 GiB', () => {
    const dir = freshDir('npz-write');
    for (const zip64End of [false, true]) {
      const file = join(dir, `w${zip64End}.npz`);
      writeNpz(file, {
        n: 9,
        zip64End,
        chunk: 4,
        fill: (from, count, images, labels) => {
          for (let k = 0; k < count; k++) {
            for (let q = 0; q < SIZE; q++) images[k * SIZE + q] = pixel(from + k, q);
            labels[k] = BigInt(label(from + k));
          }
        },
      });
      const { images, labels } = readAll([file]);
      assertFixtureImages(images, 0, 9);
      assert.deepEqual(
        labels,
        Array.from({ length: 9 }, (_, i) => label(i)),
      );
    }
  });

  it('CRC-32 is zip\'s: the check value of "123456789" and the CRCs numpy\'s zip recorded', () => {
    for (const f of [crc32, crc32Js]) {
      assert.equal(f(Buffer.from('123456789')), 0xcbf43926);
      assert.equal(f(Buffer.from('56789'), f(Buffer.from('1234'))), 0xcbf43926, 'continues from a value');
    }
    // The central directory of part1.npz (written by python's zipfile) records each member's CRC-32 at offset 16.
    const whole = readFileSync(join(FIX, 'part1.npz'));
    const cd = whole.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    const img = readNpzIndex(join(FIX, 'part1.npz')).get('image')!;
    const headerStart = img.offset - 128; // numpy's header for this shape is 128 bytes
    assert.equal(crc32(whole.subarray(headerStart, img.offset + img.byteLength)), whole.readUInt32LE(cd + 16));
    assert.equal(crc32Js(whole.subarray(headerStart, img.offset + img.byteLength)), whole.readUInt32LE(cd + 16));
  });

  it('npy headers are 64-byte aligned as numpy writes them', () => {
    assert.equal(npyHeader('|u1', [7, 32, 32, 3]).length % 64, 0);
    const h = npyHeader('<i8', [5]).toString('latin1');
    assert.match(h, /'shape': \(5,\), \}/);
  });

  it('a part beyond 4 GiB (sparse file): zip64 sizes and offsets, images read by position past 2^32', () => {
    const dir = freshDir('npz-zip64');
    const file = join(dir, 'huge.npz');
    const n = 1_400_003; // image.npy: 4.3 GB; label.npy and the central directory start past 4 GiB
    const w = writeNpz(file, { n }); // no fill: a hole of zeros, labels 0
    assert.ok(w.label.offset > 2 ** 32 && w.size > 2 ** 32);
    const idx = readNpzIndex(file);
    const img = idx.get('image')!;
    const lab = idx.get('label')!;
    assert.equal(img.byteLength, n * SIZE);
    assert.ok(lab.offset > 2 ** 32, 'label.npy offset comes from the zip64 extra field');
    // Put known images and labels at the far end, by position, and read them back through the source.
    const fd = openSync(file, 'r+');
    const marks = [0, 1_000_000, n - 1];
    try {
      for (const j of marks) {
        const im = Buffer.from(Array.from({ length: SIZE }, (_, k) => pixel(j, k)));
        writeSync(fd, im, 0, SIZE, img.offset + j * SIZE);
        const lb = Buffer.alloc(8);
        lb.writeBigInt64LE(BigInt(label(j)));
        writeSync(fd, lb, 0, 8, lab.offset + j * 8);
      }
    } finally {
      closeSync(fd);
    }
    assert.ok(img.offset + (n - 1) * SIZE > 2 ** 32);
    const src = openParts([file], 10);
    try {
      assert.equal(src.n, n);
      const out = new Uint8Array(SIZE);
      for (const j of marks) {
        assert.equal(src.get(j, out, 0), label(j));
        assertFixtureImages(out, j, 1);
      }
      assert.equal(src.get(n - 2, out, 0), 0);
      assert.ok(out.every((v) => v === 0));
    } finally {
      src.close();
    }
  });
});
