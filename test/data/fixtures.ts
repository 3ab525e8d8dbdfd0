/** Generated fixtures for the data tests: CIFAR-format record files, small image sets, a tar writer. */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { after } from 'node:test';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { ImageSet } from '../../src/data/types.js';

export function tmpDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `ikl-data-${prefix}-`));
}

/** A temporary directory removed when the test file ends. */
const created: string[] = [];
after(() => created.forEach((d) => rmSync(d, { recursive: true, force: true })));
export function freshDir(prefix: string): string {
  const d = tmpDir(prefix);
  created.push(d);
  return d;
}

/**
 * Pixel value of plane `c` at position p (= y·32 + x) of record `r`: an arbitrary but known function, so readers can
 * be checked pixel by pixel without sharing code with them.
 */
export function pixelValue(r: number, c: number, p: number): number {
  return (r * 37 + c * 101 + p * 7 + ((p * p) >> 3)) & 255;
}

/** n records in CIFAR layout: labels[r] (and coarse[r] for cifar100) then the R, G, B planes of pixelValue. */
export function cifarRecords(labels: number[], coarse?: number[], firstRecord = 0): Buffer {
  const head = coarse ? 2 : 1;
  const rb = head + 3072;
  const buf = Buffer.alloc(labels.length * rb);
  labels.forEach((label, r) => {
    const o = r * rb;
    if (coarse) {
      buf[o] = coarse[r]!;
      buf[o + 1] = label;
    } else buf[o] = label;
    for (let c = 0; c < 3; c++) for (let p = 0; p < 1024; p++) buf[o + head + c * 1024 + p] = pixelValue(firstRecord + r, c, p);
  });
  return buf;
}

/** Writes a cifar-10-batches-bin folder with `perBatch` records per training file and `nTest` test records. */
export function writeCifar10Folder(dir: string, perBatch: number, nTest: number): { trainLabels: number[]; testLabels: number[] } {
  mkdirSync(dir, { recursive: true });
  const trainLabels: number[] = [];
  for (let b = 1; b <= 5; b++) {
    const labels = Array.from({ length: perBatch }, (_, r) => (b * 3 + r) % 10);
    writeFileSync(join(dir, `data_batch_${b}.bin`), cifarRecords(labels, undefined, trainLabels.length));
    trainLabels.push(...labels);
  }
  const testLabels = Array.from({ length: nTest }, (_, r) => (r * 7 + 1) % 10);
  writeFileSync(join(dir, 'test_batch.bin'), cifarRecords(testLabels));
  return { trainLabels, testLabels };
}

/** An in-memory set of n 32×32×3 images whose first two bytes encode the index (for order checks). */
export function indexedSet(n: number, numClasses = 10, name = 'indexed'): ImageSet {
  const size = 32 * 32 * 3;
  const images = new Uint8Array(n * size);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < size; k++) images[i * size + k] = (i * 13 + k * 5) & 255;
    images[i * size] = i & 255;
    images[i * size + 1] = i >> 8;
    labels[i] = i % numClasses;
  }
  return { name, images, labels, n, numClasses, height: 32, width: 32, channels: 3 };
}

export interface TarMember {
  name: string;
  data?: Uint8Array;
  /** tar type flag: '0' file, '5' directory, '2' symlink, '1' hard link, 'x' pax header. */
  type?: string;
  linkname?: string;
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** One ustar header + padded data, written from the format description (POSIX.1-1988 ustar). */
function tarEntry(m: TarMember): Buffer {
  const data = Buffer.from(m.data ?? new Uint8Array(0));
  const h = Buffer.alloc(512);
  h.write(m.name, 0, 100, 'utf8');
  h.write(octal(m.type === '5' ? 0o755 : 0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(data.length, 12), 124, 'ascii');
  h.write(octal(1_700_000_000, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(m.type ?? '0', 156, 'ascii');
  if (m.linkname) h.write(m.linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([h, data, pad]);
}

/** A pax extended header record "<len> key=value\n" (len counts itself). */
export function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.from(`${len}${body}`, 'utf8');
}

export function tarGz(members: TarMember[]): Buffer {
  return gzipSync(Buffer.concat([...members.map(tarEntry), Buffer.alloc(1024)]));
}
