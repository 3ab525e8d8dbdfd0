/**
 * What to read (PyTorch's `Dataset`): labelled images by index. The sampler (sampler.ts) says which indices make
 * a batch, the loader (loader.ts) who reads and augments them and when. Two implementations:
 *  - `MemorySource`: an in-memory ImageSet (CIFAR, synthetic);
 *  - `PartsSource`: generated images in files on disk (`.npz` parts as published, `image.npy`/`label.npy` pairs,
 *    CIFAR binary records), read by position with one pread per image and one per label: nothing is held in
 *    memory per image, so memory does not grow with the number of generated images.
 * `ConcatSource` puts several sources in one index space (real images first, then generated ones, as the
 * reference's concatenated dataset with its `sup_indices` / `unsup_indices`).
 *
 * A source crosses to a worker thread as its `spec()` (structured-cloneable: file positions, or the images in a
 * SharedArrayBuffer) and is rebuilt there by `openSource`.
 */
import { closeSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { intDtype, openFile, preadBytes, readNpyIndex, readNpzIndex, type NpyArray } from './npz.js';
import type { ImageShape } from './augment.js';
import type { ImageSet } from './types.js';

/** Random access to labelled uint8 HWC images. */
export interface ImageSource extends ImageShape {
  readonly name: string;
  readonly n: number;
  readonly numClasses: number;
  /** Copies image `index` (uint8 HWC) to dst[offset ..] and returns its label. */
  get(index: number, dst: Uint8Array, offset: number): number;
  /** A structured-cloneable description; openSource(spec) gives an equivalent source in another thread. */
  spec(): SourceSpec;
  /** Releases file handles (a no-op in memory). */
  close(): void;
}

/** One part on disk: where its images and labels lie. */
export interface PartSpec {
  file: string;
  n: number;
  /** npy: raw HWC uint8 images; cifar10/cifar100: CIFAR binary records (label byte(s), then CHW planes). */
  layout: 'npy' | 'cifar10' | 'cifar100';
  imageOffset: number;
  /** npy only: the file holding the labels (the same .npz, or label.npy), their offset and dtype. */
  labelFile?: string;
  labelOffset?: number;
  labelDescr?: string;
}

export type SourceSpec =
  | ({ kind: 'memory'; name: string; images: Uint8Array; labels: Uint8Array; n: number; numClasses: number } & ImageShape)
  | ({ kind: 'parts'; name: string; parts: PartSpec[]; numClasses: number } & ImageShape)
  | { kind: 'concat'; sources: SourceSpec[] };

export function openSource(spec: SourceSpec): ImageSource {
  if (spec.kind === 'memory') return new MemorySource({ ...spec });
  if (spec.kind === 'parts') return new PartsSource(spec.name, spec.parts, spec.numClasses, spec);
  return new ConcatSource(spec.sources.map(openSource));
}

/** An ImageSet in memory. `shared: true` copies its pixels into a SharedArrayBuffer, so workers read them in place. */
export class MemorySource implements ImageSource {
  readonly name: string;
  readonly n: number;
  readonly numClasses: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  private readonly images: Uint8Array;
  private readonly labels: Uint8Array;
  private readonly size: number;

  constructor(set: Pick<ImageSet, 'name' | 'images' | 'labels' | 'n' | 'numClasses' | 'height' | 'width' | 'channels'>, opts: { shared?: boolean } = {}) {
    this.name = set.name;
    this.n = set.n;
    this.numClasses = set.numClasses;
    this.height = set.height;
    this.width = set.width;
    this.channels = set.channels;
    this.size = set.height * set.width * set.channels;
    this.images = opts.shared ? toShared(set.images.subarray(0, set.n * this.size)) : set.images;
    this.labels = opts.shared ? toShared(set.labels.subarray(0, set.n)) : set.labels;
  }

  get(index: number, dst: Uint8Array, offset: number): number {
    dst.set(this.images.subarray(index * this.size, (index + 1) * this.size), offset);
    return this.labels[index]!;
  }

  spec(): SourceSpec {
    const { name, n, numClasses, height, width, channels } = this;
    return { kind: 'memory', name, images: toShared(this.images), labels: toShared(this.labels), n, numClasses, height, width, channels };
  }

  close(): void {}
}

function toShared(a: Uint8Array): Uint8Array {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const s = new Uint8Array(new SharedArrayBuffer(a.length));
  s.set(a);
  return s;
}

/** Several sources, one index space: source 0's indices first, then source 1's, ... */
export class ConcatSource implements ImageSource {
  readonly name: string;
  readonly n: number;
  readonly numClasses: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  private readonly starts: number[];

  constructor(readonly sources: ImageSource[]) {
    const first = sources[0];
    if (!first) throw new RangeError('ConcatSource: no sources');
    for (const s of sources) {
      if (s.height !== first.height || s.width !== first.width || s.channels !== first.channels) {
        throw new InputError(
          `${s.name}: images are ${s.height}×${s.width}×${s.channels}, expected ${first.height}×${first.width}×${first.channels} like ${first.name}`,
        );
      }
      if (s.numClasses > first.numClasses) throw new InputError(`${s.name}: ${s.numClasses} classes, expected at most ${first.numClasses} like ${first.name}`);
    }
    this.name = sources.map((s) => s.name).join('+');
    this.numClasses = first.numClasses;
    this.height = first.height;
    this.width = first.width;
    this.channels = first.channels;
    this.starts = [];
    let n = 0;
    for (const s of sources) {
      this.starts.push(n);
      n += s.n;
    }
    this.n = n;
  }

  get(index: number, dst: Uint8Array, offset: number): number {
    let k = this.sources.length - 1;
    while (index < this.starts[k]!) k--;
    return this.sources[k]!.get(index - this.starts[k]!, dst, offset);
  }

  spec(): SourceSpec {
    return { kind: 'concat', sources: this.sources.map((s) => s.spec()) };
  }

  close(): void {
    for (const s of this.sources) s.close();
  }
}

const CIFAR_HEAD = { cifar10: 1, cifar100: 2 } as const;

/** Generated images in files, read by position. Open with `openParts`, which checks every part first. */
export class PartsSource implements ImageSource {
  readonly n: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  private readonly starts: number[] = [];
  private readonly fds: number[];
  private readonly labelFds: number[];
  private readonly size: number;
  private readonly record: Uint8Array;
  private readonly labelBuf = Buffer.alloc(8);

  constructor(
    readonly name: string,
    readonly parts: PartSpec[],
    readonly numClasses: number,
    shape: ImageShape,
  ) {
    this.height = shape.height;
    this.width = shape.width;
    this.channels = shape.channels;
    this.size = shape.height * shape.width * shape.channels;
    this.record = new Uint8Array(this.size + 2);
    let n = 0;
    for (const p of parts) {
      this.starts.push(n);
      n += p.n;
    }
    this.n = n;
    this.fds = parts.map((p) => openFile(p.file));
    this.labelFds = parts.map((p, i) => (p.labelFile === undefined || p.labelFile === p.file ? this.fds[i]! : openFile(p.labelFile)));
  }

  get(index: number, dst: Uint8Array, offset: number): number {
    // Binary search for the part (a handful of parts: a linear scan would do, but this stays O(log parts)).
    let lo = 0;
    let hi = this.parts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= index) lo = mid;
      else hi = mid - 1;
    }
    const p = this.parts[lo]!;
    const j = index - this.starts[lo]!;
    const fd = this.fds[lo]!;
    if (p.layout === 'npy') {
      readFully(fd, dst, offset, this.size, p.imageOffset + j * this.size, p.file);
      const dt = intDtype(p.labelDescr!)!;
      readFully(this.labelFds[lo]!, this.labelBuf, 0, dt.bytes, p.labelOffset! + j * dt.bytes, p.labelFile ?? p.file);
      return decodeLabel(this.labelBuf, 0, dt);
    }
    const head = CIFAR_HEAD[p.layout];
    const rb = head + this.size;
    readFully(fd, this.record, 0, rb, p.imageOffset + j * rb, p.file);
    const plane = this.height * this.width;
    const c = this.channels;
    for (let q = 0; q < plane; q++) for (let k = 0; k < c; k++) dst[offset + q * c + k] = this.record[head + k * plane + q]!;
    return this.record[head - 1]!;
  }

  spec(): SourceSpec {
    const { name, parts, numClasses, height, width, channels } = this;
    return { kind: 'parts', name, parts, numClasses, height, width, channels };
  }

  close(): void {
    for (const fd of new Set([...this.fds, ...this.labelFds])) closeSync(fd);
    this.fds.length = 0;
    this.labelFds.length = 0;
  }
}

function readFully(fd: number, dst: Uint8Array, offset: number, len: number, pos: number, file: string): void {
  let got = 0;
  while (got < len) {
    const n = readSync(fd, dst, offset + got, len - got, pos + got);
    if (n === 0) throw new InputError(`${file}: file shrank while training (no bytes at ${pos + got}); re-download it`);
    got += n;
  }
}

function decodeLabel(b: Buffer, at: number, dt: { bytes: number; signed: boolean; littleEndian: boolean }): number {
  const le = dt.littleEndian;
  switch (dt.bytes) {
    case 1:
      return dt.signed ? b.readInt8(at) : b[at]!;
    case 2:
      return dt.signed ? (le ? b.readInt16LE(at) : b.readInt16BE(at)) : le ? b.readUInt16LE(at) : b.readUInt16BE(at);
    case 4:
      return dt.signed ? (le ? b.readInt32LE(at) : b.readInt32BE(at)) : le ? b.readUInt32LE(at) : b.readUInt32BE(at);
    default: {
      const v = dt.signed ? (le ? b.readBigInt64LE(at) : b.readBigInt64BE(at)) : le ? b.readBigUInt64LE(at) : b.readBigUInt64BE(at);
      return v > 2147483647n || v < -2147483648n ? -1 : Number(v);
    }
  }
}

/** One entry of data.extra.files: a path, or an explicit pair of .npy files. */
export type PartFile = string | { image: string; label: string };

const IMAGE_SIDE = 32;
/** Labels checked per read while opening a part (bounded memory whatever the part's size). */
const LABEL_CHUNK = 1 << 16;

/**
 * Opens the generated-data parts, checking each completely before training starts: layout, dtype, shape, sizes,
 * every label in 0..numClasses-1 (read in chunks, never held). Accepted per entry:
 *  - `*.npz` written by np.savez (members image.npy, uint8 N×32×32×3, and label.npy, any integer dtype);
 *  - a directory holding image.npy and label.npy (an unzipped .npz), or `{ image, label }` naming the two .npy files;
 *  - any other file: CIFAR binary records (3,073 bytes: label + CHW planes; 3,074 with a coarse label first when
 *    numClasses is 100), as `data.extra.file` always accepted.
 */
export function openParts(files: PartFile[], numClasses: number, name = 'extra'): PartsSource {
  if (!Number.isInteger(numClasses) || numClasses < 2 || numClasses > 65536)
    throw new RangeError(`numClasses: expected an integer in 2..65536, got ${numClasses}`);
  if (files.length === 0) throw new InputError('data.extra.files: expected at least one file');
  const parts = files.map((f) => describePart(f, numClasses));
  return new PartsSource(name, parts, numClasses, { height: IMAGE_SIDE, width: IMAGE_SIDE, channels: 3 });
}

function describePart(entry: PartFile, numClasses: number): PartSpec {
  if (typeof entry !== 'string') return npyPart(readNpyIndex(entry.image), readNpyIndex(entry.label), numClasses);
  let isDir: boolean;
  try {
    isDir = statSync(entry).isDirectory();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new InputError(`${entry}: missing (expected a generated-data part: .npz, a folder with image.npy and label.npy, or CIFAR binary records)`);
    throw e;
  }
  if (isDir) return npyPart(readNpyIndex(join(entry, 'image.npy')), readNpyIndex(join(entry, 'label.npy')), numClasses);
  if (entry.endsWith('.npz')) {
    const arrays = readNpzIndex(entry);
    const image = arrays.get('image');
    const label = arrays.get('label');
    const names = [...arrays.keys()].map((k) => `${k}.npy`).join(', ') || 'none';
    if (!image) throw new InputError(`${entry}: member image.npy missing (found ${names}); expected np.savez(file, image=..., label=...)`);
    if (!label) throw new InputError(`${entry}: member label.npy missing (found ${names}); expected np.savez(file, image=..., label=...)`);
    return npyPart(image, label, numClasses);
  }
  if (entry.endsWith('.npy'))
    throw new InputError(`${entry}: a lone .npy; give the pair as { image: ..., label: ... } or the folder holding image.npy and label.npy`);
  return cifarPart(entry, numClasses);
}

const where = (a: NpyArray) => (a.member === null ? a.file : `${a.file}: member ${a.member}`);

function npyPart(image: NpyArray, label: NpyArray, numClasses: number): PartSpec {
  if (image.descr !== '|u1' && image.descr !== '<u1' && image.descr !== '>u1' && image.descr !== '=u1') {
    throw new InputError(`${where(image)}: dtype ${image.descr}, expected uint8 images (|u1); convert with (x * 255).round().astype(np.uint8)`);
  }
  const [n, h, w, c] = image.shape;
  if (image.shape.length !== 4 || h !== IMAGE_SIDE || w !== IMAGE_SIDE || c !== 3) {
    throw new InputError(`${where(image)}: shape (${image.shape.join(', ')}), expected (N, 32, 32, 3) (HWC RGB)`);
  }
  const dt = intDtype(label.descr);
  if (!dt) throw new InputError(`${where(label)}: dtype ${label.descr}, expected integer labels (e.g. <i8)`);
  if (label.shape.length !== 1 || label.shape[0] !== n) {
    throw new InputError(`${where(label)}: shape (${label.shape.join(', ')}), expected (${n},) like ${image.member ?? image.file}`);
  }
  if (n === 0) throw new InputError(`${where(image)}: no images`);
  checkLabels(label, dt, numClasses);
  return { file: image.file, n: n!, layout: 'npy', imageOffset: image.offset, labelFile: label.file, labelOffset: label.offset, labelDescr: label.descr };
}

function checkLabels(label: NpyArray, dt: { bytes: number; signed: boolean; littleEndian: boolean }, numClasses: number): void {
  const fd = openFile(label.file);
  try {
    const n = label.shape[0]!;
    for (let from = 0; from < n; from += LABEL_CHUNK) {
      const count = Math.min(LABEL_CHUNK, n - from);
      const buf = preadBytes(fd, label.offset + from * dt.bytes, count * dt.bytes);
      if (buf.length < count * dt.bytes) throw new InputError(`${where(label)}: truncated; re-download the file`);
      for (let k = 0; k < count; k++) {
        const v = decodeLabel(buf, k * dt.bytes, dt);
        if (!(v >= 0 && v < numClasses)) throw new InputError(`${where(label)}: label ${v} at index ${from + k}, expected 0..${numClasses - 1}`);
      }
    }
  } finally {
    closeSync(fd);
  }
}

function cifarPart(file: string, numClasses: number): PartSpec {
  const layout = numClasses === 100 ? 'cifar100' : 'cifar10';
  const rb = CIFAR_HEAD[layout] + IMAGE_SIDE * IMAGE_SIDE * 3;
  const size = statSync(file).size;
  if (size === 0 || size % rb !== 0) {
    throw new InputError(`${file}: expected a positive multiple of ${rb} bytes (${layout} records), found ${size} (an .npz must end in .npz)`);
  }
  const n = size / rb;
  const fd = openFile(file);
  try {
    const head = CIFAR_HEAD[layout];
    for (let from = 0; from < n; from += 1024) {
      const count = Math.min(1024, n - from);
      const buf = preadBytes(fd, from * rb, count * rb);
      for (let k = 0; k < count; k++) {
        const v = buf[k * rb + head - 1]!;
        if (v >= numClasses) throw new InputError(`${file}: record ${from + k} has label ${v}, expected 0..${numClasses - 1}`);
      }
    }
  } finally {
    closeSync(fd);
  }
  return { file, n, layout, imageOffset: 0 };
}
