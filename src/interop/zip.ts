/**
 * A zip reader for untrusted archives (PyTorch's checkpoint format is a zip). It reads the central directory
 * without trusting its counts, and members only on demand:
 *
 * - the entry count of the (zip64) end record is only compared with the entries actually found between the
 *   directory's bounds (a zip64 record claiming 2^60 entries cost fflate's unzipSync hours);
 * - at most LIMITS.zipEntries entries, no duplicate names, every member's bytes inside the file and no two members
 *   sharing bytes (8 MB of directory entries pointing at one stored member made unzipSync copy 4.8 GB);
 * - stored members are views of the file (no copy); deflated ones inflate in chunks and stop as soon as the output
 *   passes the size the directory declared, which the Budget has already accepted (a member lying about its size
 *   cannot inflate past it).
 */
import { Inflate } from 'fflate';
import { LimitError, LIMITS, quote, type Budget } from './limits.js';

export class ZipError extends Error {}

interface Member {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  dataStart: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const MAX32 = 0xffffffff;

export class ZipReader {
  private readonly members = new Map<string, Member>();
  private inflated = 0;
  private readonly view: DataView;

  constructor(
    private readonly buf: Uint8Array,
    private readonly budget: Budget,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.readDirectory();
  }

  names(): string[] {
    return [...this.members.keys()];
  }

  has(name: string): boolean {
    return this.members.has(name);
  }

  private u16 = (p: number): number => this.view.getUint16(p, true);
  private u32 = (p: number): number => this.view.getUint32(p, true);
  private u64 = (p: number): number => {
    const v = this.view.getBigUint64(p, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError(`zip field of ${v} at offset ${p} is larger than any file`);
    return Number(v);
  };
  /** `what` is a function: the message quotes names from the file, built only when it is thrown. */
  private inside(start: number, length: number, what: () => string): void {
    if (start < 0 || length < 0 || start + length > this.buf.length) throw new ZipError(`${what()} lies outside the file (truncated?)`);
  }

  private readDirectory(): void {
    const b = this.buf;
    // The end record is the last 22 bytes plus a comment of at most 65535 bytes.
    let eocd = -1;
    for (let p = b.length - 22; p >= Math.max(0, b.length - 22 - 0xffff); p--) {
      if (this.u32(p) === EOCD) {
        eocd = p;
        break;
      }
    }
    if (eocd < 0) throw new ZipError('no end-of-central-directory record');
    let declared = this.u16(eocd + 10);
    let cdSize = this.u32(eocd + 12);
    let cdOffset = this.u32(eocd + 16);
    if (eocd >= 20 && this.u32(eocd - 20) === ZIP64_LOCATOR) {
      const at = this.u64(eocd - 20 + 8);
      this.inside(at, 56, () => 'zip64 end record');
      if (this.u32(at) !== ZIP64_EOCD) throw new ZipError('zip64 locator does not point at a zip64 end record');
      declared = this.u64(at + 32);
      cdSize = this.u64(at + 40);
      cdOffset = this.u64(at + 48);
    }
    this.inside(cdOffset, cdSize, () => 'central directory');
    const ranges: [number, number, string][] = [];
    let p = cdOffset;
    const end = cdOffset + cdSize;
    while (p < end) {
      if (this.members.size >= LIMITS.zipEntries) throw new LimitError(`more than ${LIMITS.zipEntries} zip entries`);
      this.inside(p, 46, () => 'central directory entry');
      if (this.u32(p) !== CENTRAL) throw new ZipError(`bad central directory entry at offset ${p}`);
      const flags = this.u16(p + 8);
      const method = this.u16(p + 10);
      let compressedSize = this.u32(p + 20);
      let size = this.u32(p + 24);
      const nameLen = this.u16(p + 28);
      const extraLen = this.u16(p + 30);
      const commentLen = this.u16(p + 32);
      let local = this.u32(p + 42);
      this.inside(p + 46, nameLen + extraLen + commentLen, () => 'central directory entry');
      const name = new TextDecoder().decode(b.subarray(p + 46, p + 46 + nameLen));
      // zip64: the sizes and offset that do not fit 32 bits are in extra field 0x0001, in this order.
      for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen;) {
        const id = this.u16(e);
        const len = this.u16(e + 2);
        if (id === 1) {
          let q = e + 4;
          const take = (): number => {
            if (q + 8 > e + 4 + len) throw new ZipError(`zip64 extra field of ${quote(name)} too short`);
            q += 8;
            return this.u64(q - 8);
          };
          if (size === MAX32) size = take();
          if (compressedSize === MAX32) compressedSize = take();
          if (local === MAX32) local = take();
        }
        e += 4 + len;
      }
      if (flags & 1) throw new ZipError(`zip entry ${quote(name)} is encrypted`);
      if (this.members.has(name)) throw new ZipError(`zip entry ${quote(name)} appears twice`);
      this.inside(local, 30, () => `local header of ${quote(name)}`);
      if (this.u32(local) !== LOCAL) throw new ZipError(`zip entry ${quote(name)}: no local header at offset ${local}`);
      const dataStart = local + 30 + this.u16(local + 26) + this.u16(local + 28);
      this.inside(dataStart, compressedSize, () => `data of zip entry ${quote(name)}`);
      if (method !== 0 && method !== 8) throw new ZipError(`zip entry ${quote(name)}: unsupported compression method ${method}`);
      if (method === 0 && compressedSize !== size) throw new ZipError(`stored zip entry ${quote(name)} declares ${size} bytes but holds ${compressedSize}`);
      this.members.set(name, { name, method, compressedSize, size, dataStart });
      ranges.push([local, dataStart + compressedSize, name]);
      p += 46 + nameLen + extraLen + commentLen;
    }
    if (this.members.size !== declared) throw new ZipError(`zip end record declares ${declared} entries, the central directory holds ${this.members.size}`);
    ranges.sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < ranges.length; i++) {
      if (ranges[i]![0] < ranges[i - 1]![1]) throw new ZipError(`zip entries ${quote(ranges[i - 1]![2])} and ${quote(ranges[i]![2])} share bytes`);
    }
  }

  /** A member's bytes (a view for a stored member), or undefined if there is none of that name. */
  read(name: string): Uint8Array | undefined {
    const m = this.members.get(name);
    if (!m) return undefined;
    const raw = this.buf.subarray(m.dataStart, m.dataStart + m.compressedSize);
    if (m.method === 0) return raw;
    // torch.save stores members uncompressed: all deflated members together may not inflate to more than 4x the
    // file (+1 MiB), so a zip bomb is refused before any memory is allocated for it.
    this.inflated += m.size;
    if (this.inflated > 4 * this.buf.length + 2 ** 20) throw new ZipError(`zip entry ${quote(name)} would inflate far beyond the file size`);
    this.budget.copy(m.size, `inflating zip entry ${quote(name)}`);
    const out = new Uint8Array(m.size);
    let n = 0;
    let ended = false;
    const inflate = new Inflate((chunk, final) => {
      if (n + chunk.length > m.size) throw new ZipError(`zip entry ${quote(name)} inflates to more than the ${m.size} bytes it declares`);
      out.set(chunk, n);
      n += chunk.length;
      if (final) ended = true;
    });
    try {
      // Chunks of 64 KiB: deflate expands at most ~1032x, so one push creates at most ~66 MB before the check.
      for (let i = 0; i < raw.length; i += 65536) inflate.push(raw.subarray(i, i + 65536), i + 65536 >= raw.length);
      if (raw.length === 0) inflate.push(raw, true);
    } catch (e) {
      if (e instanceof ZipError) throw e;
      throw new ZipError(`zip entry ${quote(name)} does not inflate (${(e as Error).message})`);
    }
    if (!ended || n !== m.size) throw new ZipError(`zip entry ${quote(name)} inflates to ${n} bytes, declares ${m.size}`);
    return out;
  }
}
