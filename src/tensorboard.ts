/**
 * TensorBoard event files, written and read without TensorFlow: what `tensorboard --logdir` (and any tool that
 * reads its files) opens. Written here rather than through tfjs-node's summary writer (tf.node.summaryFileWriter,
 * which works with our native binding) so that the files come out the same on every backend, the pure-JS one
 * included, and a test can read them back byte by byte.
 *
 * Format: a file `events.out.tfevents.<seconds>.<host>.<pid>.<n>` of TFRecords — uint64 length (little endian),
 * uint32 masked CRC-32C of those 8 bytes, the payload, uint32 masked CRC-32C of the payload — each payload an
 * `Event` protobuf (tensorflow/core/util/event.proto): wall_time (field 1, double), step (2, int64), then either
 * file_version (3, "brain.Event:2", the first record) or summary (5) holding `Summary.Value`s of tag (1) and
 * simple_value (2, float): TensorBoard's scalars. A resumed run opens a new file; TensorBoard drops the steps the
 * interrupted file logged past the point the new one starts from (its orphaned-data purge).
 */
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

// ----- CRC-32C (Castagnoli), as TFRecord frames use it -----
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotate right by 15 and add a constant (so CRCs of CRCs do not look like data). */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One record: the frame around a payload. */
export function tfRecord(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(16 + payload.length);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(payload.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(payload, 12);
  view.setUint32(12 + payload.length, maskedCrc32c(payload), true);
  return out;
}

// ----- the few protobuf encodings an Event needs -----
function varint(v: bigint | number): number[] {
  let x = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
  return out;
}

function lengthDelimited(field: number, bytes: Uint8Array): number[] {
  return [...varint((field << 3) | 2), ...varint(bytes.length), ...bytes];
}

const utf8 = new TextEncoder();

/** An Event with a file version or with scalar values. */
export function encodeEvent(e: { wallTime: number; step: number; fileVersion?: string; scalars?: Array<{ tag: string; value: number }> }): Uint8Array {
  const bytes: number[] = [];
  const f64 = new Uint8Array(8);
  new DataView(f64.buffer).setFloat64(0, e.wallTime, true);
  bytes.push(0x09, ...f64); // field 1, wire type 1 (64-bit)
  bytes.push(0x10, ...varint(e.step)); // field 2, varint
  if (e.fileVersion !== undefined) bytes.push(...lengthDelimited(3, utf8.encode(e.fileVersion)));
  if (e.scalars && e.scalars.length > 0) {
    const summary: number[] = [];
    for (const s of e.scalars) {
      const f32 = new Uint8Array(4);
      new DataView(f32.buffer).setFloat32(0, s.value, true);
      const value = [...lengthDelimited(1, utf8.encode(s.tag)), 0x15, ...f32]; // tag; simple_value (field 2, 32-bit)
      summary.push(...lengthDelimited(1, Uint8Array.from(value)));
    }
    bytes.push(...lengthDelimited(5, Uint8Array.from(summary)));
  }
  return Uint8Array.from(bytes);
}

/** Scalars under one directory, one event file per writer. Writes go straight to the file (append, no buffer). */
export class TensorBoardWriter {
  readonly file: string;
  private fd: number | null;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    const now = Date.now() / 1000;
    // TensorBoard lists files whose name contains "tfevents"; the suffix keeps two writers of a second apart.
    for (let n = 0; ; n++) {
      const file = join(dir, `events.out.tfevents.${Math.floor(now)}.${hostname()}.${process.pid}.${n}`);
      try {
        this.fd = openSync(file, 'wx');
        this.file = file;
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    this.write(encodeEvent({ wallTime: now, step: 0, fileVersion: 'brain.Event:2' }));
  }

  /** Scalars of one step; non-finite values are skipped (TensorBoard would plot them as gaps anyway). */
  scalars(step: number, values: Record<string, number | null | undefined>, wallTime = Date.now() / 1000): void {
    const scalars = Object.entries(values)
      .filter((e): e is [string, number] => typeof e[1] === 'number' && Number.isFinite(e[1]))
      .map(([tag, value]) => ({ tag, value }));
    if (scalars.length > 0) this.write(encodeEvent({ wallTime, step, scalars }));
  }

  /** Flushes to the disk (at checkpoints: what a resume continues from is on disk too). */
  flush(): void {
    if (this.fd !== null) fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd === null) return;
    this.flush();
    closeSync(this.fd);
    this.fd = null;
  }

  private write(payload: Uint8Array): void {
    if (this.fd === null) throw new Error(`tensorboard: ${this.file} is closed`);
    writeSync(this.fd, tfRecord(payload));
  }
}

// ----- reading back (tests, and anyone checking a file without Python) -----

export interface EventRecord {
  wallTime: number;
  step: number;
  fileVersion?: string;
  scalars: Array<{ tag: string; value: number }>;
}

/**
 * The events of a file, every frame's two CRCs checked (a mismatch throws, naming the offset). A truncated last
 * record (a writer killed mid-write) ends the list, as TensorBoard's reader treats it.
 */
export function readEvents(bytes: Uint8Array): EventRecord[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: EventRecord[] = [];
  let at = 0;
  while (at + 12 <= bytes.length) {
    const len = Number(view.getBigUint64(at, true));
    if (view.getUint32(at + 8, true) !== maskedCrc32c(bytes.subarray(at, at + 8))) throw new Error(`tensorboard: bad length CRC at byte ${at}`);
    if (at + 16 + len > bytes.length) break;
    const payload = bytes.subarray(at + 12, at + 12 + len);
    if (view.getUint32(at + 12 + len, true) !== maskedCrc32c(payload)) throw new Error(`tensorboard: bad data CRC at byte ${at}`);
    out.push(decodeEvent(payload));
    at += 16 + len;
  }
  return out;
}

const utf8d = new TextDecoder();

/** Walks the fields of a protobuf message: (field, wire type, value bytes or number). */
function* fields(b: Uint8Array): Generator<{ field: number; wire: number; bytes: Uint8Array; num: bigint }> {
  let i = 0;
  const readVarint = (): bigint => {
    let v = 0n;
    for (let shift = 0n; ; shift += 7n) {
      const byte = b[i++]!;
      v |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return v;
    }
  };
  while (i < b.length) {
    const key = Number(readVarint());
    const field = key >> 3;
    const wire = key & 7;
    if (wire === 0) yield { field, wire, bytes: new Uint8Array(0), num: readVarint() };
    else if (wire === 1) {
      yield { field, wire, bytes: b.subarray(i, i + 8), num: 0n };
      i += 8;
    } else if (wire === 2) {
      const len = Number(readVarint());
      yield { field, wire, bytes: b.subarray(i, i + len), num: 0n };
      i += len;
    } else if (wire === 5) {
      yield { field, wire, bytes: b.subarray(i, i + 4), num: 0n };
      i += 4;
    } else throw new Error(`tensorboard: unsupported wire type ${wire}`);
  }
}

function decodeEvent(b: Uint8Array): EventRecord {
  const e: EventRecord = { wallTime: 0, step: 0, scalars: [] };
  for (const f of fields(b)) {
    if (f.field === 1 && f.wire === 1) e.wallTime = new DataView(f.bytes.buffer, f.bytes.byteOffset, 8).getFloat64(0, true);
    else if (f.field === 2 && f.wire === 0) e.step = Number(BigInt.asIntN(64, f.num));
    else if (f.field === 3 && f.wire === 2) e.fileVersion = utf8d.decode(f.bytes);
    else if (f.field === 5 && f.wire === 2) {
      for (const v of fields(f.bytes)) {
        if (v.field !== 1 || v.wire !== 2) continue;
        let tag = '';
        let value = NaN;
        for (const g of fields(v.bytes)) {
          if (g.field === 1 && g.wire === 2) tag = utf8d.decode(g.bytes);
          else if (g.field === 2 && g.wire === 5) value = new DataView(g.bytes.buffer, g.bytes.byteOffset, 4).getFloat32(0, true);
        }
        e.scalars.push({ tag, value });
      }
    }
  }
  return e;
}
