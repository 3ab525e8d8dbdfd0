/**
 * Locating arrays inside the published generated-data files without loading them.
 *
 * DM-Improves-AT's parts (`20m_part1.npz`, ...) were written by `np.savez`: an uncompressed (stored) zip whose
 * members `image.npy` and `label.npy` are plain .npy files, each member written with `force_zip64=True`
 * (numpy gh-10776), and the parts are far beyond 4 GB. We read the zip's central directory (zip64 end record and
 * extra fields included), then the member's local header (its name and extra field lengths differ from the
 * central copy's) and the .npy header, and return where the raw array bytes start: images are then read by
 * position (pread), never as a whole. Every refusal is one line naming the file and the member.
 *
 * Formats: APPNOTE.TXT (PKWARE) 4.3.7 local header, 4.3.12 central directory header, 4.3.14-16 zip64 end
 * records, 4.5.3 zip64 extended information; numpy's NEP 1 (.npy versions 1.0, 2.0, 3.0).
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { InputError } from '../errors.js';

/** A C-order array stored raw at [offset, offset + byteLength) of `file`. */
export interface NpyArray {
  file: string;
  /** The zip member name, or null for a plain .npy file. */
  member: string | null;
  /** numpy's dtype string, e.g. '|u1', '<i8', '>i2'. */
  descr: string;
  shape: number[];
  /** Byte offset of element 0 in the file. */
  offset: number;
  byteLength: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;
const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** The bytes of `file` at [pos, pos + len) (fewer at the end of the file). */
export function preadBytes(fd: number, pos: number, len: number): Buffer {
  const buf = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = readSync(fd, buf, got, len - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got === len ? buf : buf.subarray(0, got);
}

/** A 64-bit little-endian value that must fit a double exactly (files below 8 PB). */
function u64(b: Buffer, at: number): number {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`64-bit value ${v} too large`);
  return Number(v);
}

interface CentralEntry {
  name: string;
  method: number;
  flags: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

/** Reads the central directory of the zip open as fd (size bytes). */
function centralDirectory(fd: number, file: string, size: number): CentralEntry[] {
  const bad = (what: string) => new InputError(`${file}: ${what}`);
  // The end-of-central-directory record is in the last 22 + 65535 (comment) bytes.
  const tailLen = Math.min(size, 22 + U16_MAX);
  const tail = preadBytes(fd, size - tailLen, tailLen);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG_EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw bad(
      'not a zip archive or truncated (no end-of-central-directory record; an .npz written by np.savez ends with one): re-download or re-save the file',
    );
  }
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  const eocdPos = size - tailLen + eocd;
  if (count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) {
    // zip64: a locator (20 bytes) sits right before the EOCD and points at the zip64 end record.
    const loc = eocdPos >= 20 ? preadBytes(fd, eocdPos - 20, 20) : Buffer.alloc(0);
    if (loc.length < 20 || loc.readUInt32LE(0) !== SIG_ZIP64_LOCATOR) throw bad('zip64 archive without its zip64 end-of-central-directory locator (corrupt)');
    const recPos = u64(loc, 8);
    const rec = preadBytes(fd, recPos, 56);
    if (rec.length < 56 || rec.readUInt32LE(0) !== SIG_ZIP64_EOCD) throw bad('zip64 end-of-central-directory record missing (corrupt or truncated)');
    count = u64(rec, 32);
    cdSize = u64(rec, 40);
    cdOffset = u64(rec, 48);
  }
  if (cdOffset + cdSize > eocdPos) throw bad(`central directory at ${cdOffset}+${cdSize} overlaps its end record (corrupt or truncated)`);
  if (cdSize > 1 << 24) throw bad(`central directory of ${cdSize} bytes: too large for an .npz`);
  const cd = preadBytes(fd, cdOffset, cdSize);
  const entries: CentralEntry[] = [];
  let p = 0;
  for (let e = 0; e < count; e++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) throw bad(`central directory entry ${e} is corrupt`);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
    let compressedSize = cd.readUInt32LE(p + 20);
    let uncompressed = cd.readUInt32LE(p + 24);
    let localOffset = cd.readUInt32LE(p + 42);
    // zip64 extended information (id 1): the 8-byte values of exactly those fields that are 0xFFFFFFFF, in the
    // order uncompressed size, compressed size, local header offset.
    const extra = cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen);
    for (let q = 0; q + 4 <= extra.length;) {
      const id = extra.readUInt16LE(q);
      const len = extra.readUInt16LE(q + 2);
      if (id === 1) {
        let r = q + 4;
        const take = () => {
          if (r + 8 > q + 4 + len) throw bad(`member ${name}: zip64 extra field too short`);
          const v = u64(extra, r);
          r += 8;
          return v;
        };
        if (uncompressed === U32_MAX) uncompressed = take();
        if (compressedSize === U32_MAX) compressedSize = take();
        if (localOffset === U32_MAX) localOffset = take();
      }
      q += 4 + len;
    }
    entries.push({ name, method: cd.readUInt16LE(p + 10), flags: cd.readUInt16LE(p + 8), compressedSize, size: uncompressed, localOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** Parses a .npy header at `pos` of fd; returns descr, shape, and where the data starts. */
function npyHeader(fd: number, where: string, pos: number, limit: number): { descr: string; shape: number[]; dataOffset: number } {
  const bad = (what: string) => new InputError(`${where}: ${what}`);
  const pre = preadBytes(fd, pos, 12);
  if (pre.length < 10 || !NPY_MAGIC.every((v, i) => pre[i] === v)) throw bad('not a .npy array (no \\x93NUMPY magic)');
  const major = pre[6]!;
  if (major < 1 || major > 3) throw bad(`.npy format version ${major}.${pre[7]} is not supported (expected 1.0, 2.0 or 3.0)`);
  const headLen = major === 1 ? pre.readUInt16LE(8) : pre.readUInt32LE(8);
  const start = pos + (major === 1 ? 10 : 12);
  if (headLen > 1 << 20 || start + headLen > limit) throw bad('.npy header runs past the end of the member (truncated)');
  const text = preadBytes(fd, start, headLen).toString(major === 3 ? 'utf8' : 'latin1');
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw bad(`unreadable .npy header ${JSON.stringify(text.trim())}`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  if (shape.some((d) => !Number.isSafeInteger(d) || d < 0)) throw bad(`unreadable .npy shape (${shapeText})`);
  if (fortran === 'True' && shape.filter((d) => d > 1).length > 1) throw bad('Fortran-order array; re-save it in C order (np.ascontiguousarray)');
  return { descr, shape, dataOffset: start + headLen };
}

/** Bytes per element of an integer or uint8 dtype string, or undefined for anything else. */
export function intDtype(descr: string): { bytes: number; signed: boolean; littleEndian: boolean } | undefined {
  const m = /^([<>|=])([iu])([1248])$/.exec(descr);
  if (!m) return undefined;
  const bytes = Number(m[3]);
  return { bytes, signed: m[2] === 'i', littleEndian: m[1] !== '>' };
}

function checkedArray(fd: number, file: string, member: string | null, at: number, end: number, fileSize: number): NpyArray {
  const where = member === null ? file : `${file}: member ${member}`;
  if (end > fileSize) {
    throw new InputError(`${where}: truncated (the member ends at byte ${end}, the file has ${fileSize}); re-download the file`);
  }
  const h = npyHeader(fd, where, at, end);
  const item = Number(/^[<>|=]?[a-zA-Z](\d+)$/.exec(h.descr)?.[1] ?? 0);
  const byteLength = h.shape.reduce((a, b) => a * b, 1) * item;
  if (h.dataOffset + byteLength > end) {
    throw new InputError(
      `${where}: truncated (shape (${h.shape.join(', ')}) needs ${byteLength} bytes of data, ${end - h.dataOffset} present); re-download the file`,
    );
  }
  return { file, member, descr: h.descr, shape: h.shape, offset: h.dataOffset, byteLength };
}

/**
 * The arrays of an .npz (np.savez): name without '.npy' → where its data lies. Refuses compressed or encrypted
 * members and truncated files.
 */
export function readNpzIndex(file: string): Map<string, NpyArray> {
  const fd = openFile(file);
  try {
    const size = fstatSync(fd).size;
    const out = new Map<string, NpyArray>();
    for (const e of centralDirectory(fd, file, size)) {
      if (!e.name.endsWith('.npy')) continue;
      const where = `${file}: member ${e.name}`;
      if (e.method !== 0) {
        throw new InputError(
          `${where}: compressed (zip method ${e.method}); images are read by position, so the file must be written by np.savez, not np.savez_compressed: ` +
            `re-save with np.savez(out, image=d['image'], label=d['label'])`,
        );
      }
      if (e.flags & 1) throw new InputError(`${where}: encrypted zip member`);
      const local = preadBytes(fd, e.localOffset, 30);
      if (local.length < 30) throw new InputError(`${where}: truncated (local header at byte ${e.localOffset}, the file has ${size}); re-download the file`);
      if (local.readUInt32LE(0) !== SIG_LOCAL) throw new InputError(`${where}: no local header at byte ${e.localOffset} (corrupt zip)`);
      const start = e.localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
      out.set(e.name.slice(0, -4), checkedArray(fd, file, e.name, start, start + e.size, size));
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/** A plain .npy file. */
export function readNpyIndex(file: string): NpyArray {
  const fd = openFile(file);
  try {
    const size = fstatSync(fd).size;
    return checkedArray(fd, file, null, 0, size, size);
  } finally {
    closeSync(fd);
  }
}

/** openSync with the project's one-line errors. */
export function openFile(file: string): number {
  try {
    return openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new InputError(`${file}: missing`);
    if (code === 'EACCES') throw new InputError(`${file}: not readable (permission denied)`);
    if (code === 'EISDIR') throw new InputError(`${file}: is a directory, expected a file`);
    throw e;
  }
}
