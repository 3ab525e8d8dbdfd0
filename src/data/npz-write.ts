/**
 * Writes an .npz in the layout of the published generated data (what `np.savez(file, image=..., label=...)`
 * writes): an uncompressed zip, members written as numpy does with force_zip64 (local headers carry 0xFFFFFFFF
 * sizes and a zip64 extra field), zip64 central-directory fields and end records when offsets pass 4 GiB.
 * `image.npy` is uint8 N×32×32×3, `label.npy` int64 (the reference scripts' dtype). Streamed in chunks, so a
 * file of any size is written in bounded memory; `np.load` reads the result (CRC-32 included).
 *
 * Used by `scripts/make-npz.mjs` (a synthetic file for checking a set-up), the tests and the benchmarks.
 */
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import * as zlib from 'node:zlib';

export interface NpzWriteOptions {
  /** Images. */
  n: number;
  /**
   * Fills images [from, from + count) (uint8 HWC, count×3072 bytes) and their labels. Omitted: the images are a
   * hole of zeros in a sparse file (their CRC is then not computed: for reader tests of huge files only) and
   * labels 0.
   */
  fill?: (from: number, count: number, images: Uint8Array, labels: BigInt64Array) => void;
  /** Write the zip64 end records even for a small file (python writes them only past 4 GiB or 65,535 members). */
  zip64End?: boolean;
  /** Images per write. Default 4096 (12 MB). */
  chunk?: number;
}

const IMAGE_BYTES = 32 * 32 * 3;

/** CRC-32 (zip's, IEEE 802.3) table for Node versions without zlib.crc32 (added in 20.15). */
const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 of `data` continuing from `value` (zlib.crc32's contract), in JS. */
export function crc32Js(data: Uint8Array, value = 0): number {
  let c = ~value >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** zlib.crc32 where Node has it (fast), crc32Js otherwise. */
export const crc32: (data: Uint8Array, value?: number) => number = (zlib as { crc32?: (d: Uint8Array, v?: number) => number }).crc32 ?? crc32Js;
const U32 = 0xffffffff;

/** A .npy v1.0 header padded (spaces, final newline) so the data starts on a 64-byte boundary, as numpy does. */
export function npyHeader(descr: string, shape: number[]): Buffer {
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const head = Buffer.alloc(total, 0x20);
  head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  head.writeUInt16LE(total - 10, 8);
  head.write(dict, 10, 'latin1');
  head[total - 1] = 0x0a;
  return head;
}

interface Written {
  name: string;
  offset: number;
  size: number;
  crc: number;
}

/** Writes `file`. Returns the member offsets (for tests). */
export function writeNpz(file: string, opts: NpzWriteOptions): { image: Written; label: Written; size: number } {
  const { n } = opts;
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`n: expected a positive integer, got ${n}`);
  const chunk = opts.chunk ?? 4096;
  const fd = openSync(file, 'w');
  try {
    let pos = 0;
    const put = (b: Uint8Array) => {
      let done = 0;
      while (done < b.length) done += writeSync(fd, b, done, b.length - done, pos + done);
      pos += b.length;
    };
    // Labels come with their images but their member follows all images: they are kept until then (8 bytes per
    // image, 16 MB for a 6 GB file), which is what bounds the writer's memory.
    const labels = new BigInt64Array(n);
    const member = (name: string, header: Buffer, dataSize: number, body: (crc: number) => number): Written => {
      const offset = pos;
      const nameBytes = Buffer.from(name, 'utf8');
      const size = header.length + dataSize;
      const local = Buffer.alloc(30 + nameBytes.length + 20);
      local.writeUInt32LE(0x04034b50, 0);
      local.writeUInt16LE(45, 4); // version needed: 4.5 (zip64)
      local.writeUInt16LE(0, 6);
      local.writeUInt16LE(0, 8); // stored
      local.writeUInt16LE(0, 10);
      local.writeUInt16LE(0x21, 12); // 1980-01-01, as zipfile's default date_time
      local.writeUInt32LE(U32, 18);
      local.writeUInt32LE(U32, 22);
      local.writeUInt16LE(nameBytes.length, 26);
      local.writeUInt16LE(20, 28);
      nameBytes.copy(local, 30);
      const x = 30 + nameBytes.length;
      local.writeUInt16LE(1, x);
      local.writeUInt16LE(16, x + 2);
      local.writeBigUInt64LE(BigInt(size), x + 4);
      local.writeBigUInt64LE(BigInt(size), x + 12);
      put(local);
      put(header);
      const crc = body(crc32(header));
      // CRC-32 is known only now: patch the local header (python's zipfile seeks back the same way).
      const c = Buffer.alloc(4);
      c.writeUInt32LE(crc >>> 0, 0);
      writeSync(fd, c, 0, 4, offset + 14);
      return { name, offset, size, crc: crc >>> 0 };
    };

    const imageHeader = npyHeader('|u1', [n, 32, 32, 3]);
    const image = member('image.npy', imageHeader, n * IMAGE_BYTES, (crc) => {
      if (!opts.fill) {
        pos += n * IMAGE_BYTES;
        ftruncateSync(fd, pos);
        return 0;
      }
      const buf = new Uint8Array(Math.min(chunk, n) * IMAGE_BYTES);
      for (let from = 0; from < n; from += chunk) {
        const count = Math.min(chunk, n - from);
        const view = buf.subarray(0, count * IMAGE_BYTES);
        opts.fill(from, count, view, labels.subarray(from, from + count));
        put(view);
        crc = crc32(view, crc);
      }
      return crc;
    });
    const labelBytes = new Uint8Array(labels.buffer);
    const label = member('label.npy', npyHeader('<i8', [n]), labelBytes.length, (crc) => {
      put(labelBytes);
      return crc32(labelBytes, crc);
    });

    // Central directory.
    const cdOffset = pos;
    for (const m of [image, label]) {
      const nameBytes = Buffer.from(m.name, 'utf8');
      const big = [m.size >= U32, m.size >= U32, m.offset >= U32];
      const extraLen = big.some(Boolean) ? 4 + 8 * big.filter(Boolean).length : 0;
      const e = Buffer.alloc(46 + nameBytes.length + extraLen);
      e.writeUInt32LE(0x02014b50, 0);
      e.writeUInt16LE(45, 4);
      e.writeUInt16LE(45, 6);
      e.writeUInt16LE(0, 8);
      e.writeUInt16LE(0, 10);
      e.writeUInt16LE(0, 12);
      e.writeUInt16LE(0x21, 14);
      e.writeUInt32LE(m.crc, 16);
      e.writeUInt32LE(big[1] ? U32 : m.size, 20);
      e.writeUInt32LE(big[0] ? U32 : m.size, 24);
      e.writeUInt16LE(nameBytes.length, 28);
      e.writeUInt16LE(extraLen, 30);
      e.writeUInt32LE(0o600 << 16, 38);
      e.writeUInt32LE(big[2] ? U32 : m.offset, 42);
      nameBytes.copy(e, 46);
      if (extraLen > 0) {
        let q = 46 + nameBytes.length;
        e.writeUInt16LE(1, q);
        e.writeUInt16LE(extraLen - 4, q + 2);
        q += 4;
        for (const [k, v] of [m.size, m.size, m.offset].entries()) {
          if (!big[k]) continue;
          e.writeBigUInt64LE(BigInt(v), q);
          q += 8;
        }
      }
      put(e);
    }
    const cdSize = pos - cdOffset;
    const zip64 = opts.zip64End === true || cdOffset >= U32;
    if (zip64) {
      const recOffset = pos;
      const r = Buffer.alloc(56 + 20);
      r.writeUInt32LE(0x06064b50, 0);
      r.writeBigUInt64LE(44n, 4);
      r.writeUInt16LE(45, 12);
      r.writeUInt16LE(45, 14);
      r.writeBigUInt64LE(2n, 24);
      r.writeBigUInt64LE(2n, 32);
      r.writeBigUInt64LE(BigInt(cdSize), 40);
      r.writeBigUInt64LE(BigInt(cdOffset), 48);
      r.writeUInt32LE(0x07064b50, 56);
      r.writeBigUInt64LE(BigInt(recOffset), 64);
      r.writeUInt32LE(1, 72);
      put(r);
    }
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(2, 8);
    end.writeUInt16LE(2, 10);
    end.writeUInt32LE(cdSize, 12);
    end.writeUInt32LE(zip64 ? U32 : cdOffset, 16);
    put(end);
    return { image, label, size: pos };
  } finally {
    closeSync(fd);
  }
}
