/**
 * Builders of weight files byte by byte, for the fuzzer's seeds and the hand-made hostile files: a pickle
 * assembler, a zip writer that can lie (sizes, counts, shared members, zip64 records), safetensors with any header.
 */
import { deflateSync } from 'fflate';

const enc = new TextEncoder();

/** A pickle assembled from opcodes; helpers append one opcode with its argument. */
export class Pickle {
  readonly out: number[] = [];
  op(...b: number[]): this {
    for (const x of b) this.out.push(x & 255);
    return this;
  }
  raw(b: ArrayLike<number>): this {
    for (let i = 0; i < b.length; i++) this.out.push(b[i]!);
    return this;
  }
  i32(n: number): this {
    return this.op(n, n >> 8, n >> 16, n >>> 24);
  }
  proto(v = 2): this {
    return this.op(0x80, v);
  }
  binint(n: number): this {
    return this.op(0x4a).i32(n);
  }
  str(s: string | Uint8Array): this {
    const b = typeof s === 'string' ? enc.encode(s) : s;
    return this.op(0x58).i32(b.length).raw(b);
  }
  global(module: string, name: string): this {
    return this.op(0x63).raw(enc.encode(`${module}\n${name}\n`));
  }
  mark(): this {
    return this.op(0x28);
  }
  tuple(): this {
    return this.op(0x74);
  }
  emptyTuple(): this {
    return this.op(0x29);
  }
  reduce(): this {
    return this.op(0x52);
  }
  emptyDict(): this {
    return this.op(0x7d);
  }
  emptyList(): this {
    return this.op(0x5d);
  }
  setitems(): this {
    return this.op(0x75);
  }
  put(i: number): this {
    return this.op(0x72).i32(i);
  }
  get(i: number): this {
    return this.op(0x6a).i32(i);
  }
  stop(): Uint8Array {
    this.op(0x2e);
    return Uint8Array.from(this.out);
  }
  /** _rebuild_tensor_v2(('storage', FloatStorage, key, 'cpu', numel), offset, size, stride, False, OrderedDict()). */
  tensor(t: TensorSpec): this {
    this.global('torch._utils', '_rebuild_tensor_v2').mark();
    this.mark().str('storage').global('torch', 'FloatStorage').str(t.key).str('cpu').binint(t.numel).tuple().op(0x51);
    this.binint(t.offset ?? 0).mark();
    for (const d of t.shape) this.binint(d);
    this.tuple().mark();
    for (const s of t.stride ?? contiguous(t.shape)) this.binint(s);
    this.tuple().op(0x89).global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
    return this;
  }
}

export interface TensorSpec {
  key: string;
  numel: number;
  shape: number[];
  stride?: number[];
  offset?: number;
}

export const contiguous = (shape: readonly number[]): number[] => shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));

/** The pickle of OrderedDict(name → tensor) for `tensors`. */
export function stateDictPickle(tensors: readonly (TensorSpec & { name: string })[]): Uint8Array {
  const p = new Pickle().proto().global('collections', 'OrderedDict').emptyTuple().reduce().mark();
  for (const t of tensors) p.str(t.name).tensor(t);
  return p.setitems().stop();
}

export interface ZipMember {
  name: string;
  data: Uint8Array;
  /** Deflate the member (torch.save stores them). */
  deflate?: boolean;
  /** The uncompressed size written in the headers (default: the true one). */
  declaredSize?: number;
}

export interface ZipLies {
  /** Extra central-directory entries, each a new name pointing at the local header of member `target`. */
  aliases?: { target: number; count: number };
  /** Write a zip64 end record and locator declaring this many entries. */
  zip64Entries?: bigint;
}

/** A zip archive of `members` (with the lies asked for). */
export function zip(members: readonly ZipMember[], lies: ZipLies = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  let offset = 0;
  const central: Uint8Array[] = [];
  const header = (n: number): [Uint8Array, DataView] => {
    const b = new Uint8Array(n);
    return [b, new DataView(b.buffer)];
  };
  const cd = (name: Uint8Array, method: number, csize: number, size: number, local: number): Uint8Array => {
    const [b, v] = header(46 + name.length);
    v.setUint32(0, 0x02014b50, true);
    v.setUint16(4, 20, true);
    v.setUint16(6, 20, true);
    v.setUint16(10, method, true);
    v.setUint32(20, csize, true);
    v.setUint32(24, size, true);
    v.setUint16(28, name.length, true);
    v.setUint32(42, local, true);
    b.set(name, 46);
    return b;
  };
  const locals: number[] = [];
  for (const m of members) {
    const name = enc.encode(m.name);
    const data = m.deflate ? deflateSync(m.data) : m.data;
    const size = m.declaredSize ?? m.data.length;
    const method = m.deflate ? 8 : 0;
    const [lh, v] = header(30 + name.length);
    v.setUint32(0, 0x04034b50, true);
    v.setUint16(4, 20, true);
    v.setUint16(8, method, true);
    v.setUint32(18, data.length, true);
    v.setUint32(22, size, true);
    v.setUint16(26, name.length, true);
    lh.set(name, 30);
    locals.push(offset);
    central.push(cd(name, method, data.length, size, offset));
    parts.push(lh, data);
    offset += lh.length + data.length;
  }
  if (lies.aliases) {
    const t = lies.aliases.target;
    const m = members[t]!;
    const data = m.deflate ? deflateSync(m.data) : m.data;
    for (let i = 0; i < lies.aliases.count; i++)
      central.push(cd(enc.encode(`${m.name}.alias${i}`), m.deflate ? 8 : 0, data.length, m.declaredSize ?? m.data.length, locals[t]!));
  }
  const cdOffset = offset;
  const cdSize = central.reduce((a, b) => a + b.length, 0);
  parts.push(...central);
  offset += cdSize;
  if (lies.zip64Entries !== undefined) {
    const [z, v] = header(56);
    v.setUint32(0, 0x06064b50, true);
    v.setBigUint64(4, 44n, true);
    v.setBigUint64(24, lies.zip64Entries, true);
    v.setBigUint64(32, lies.zip64Entries, true);
    v.setBigUint64(40, BigInt(cdSize), true);
    v.setBigUint64(48, BigInt(cdOffset), true);
    const [loc, lv] = header(20);
    lv.setUint32(0, 0x07064b50, true);
    lv.setBigUint64(8, BigInt(offset), true);
    lv.setUint32(16, 1, true);
    parts.push(z, loc);
    offset += 76;
  }
  const [e, v] = header(22);
  const count = lies.zip64Entries !== undefined ? 0xffff : central.length;
  v.setUint32(0, 0x06054b50, true);
  v.setUint16(8, count, true);
  v.setUint16(10, count, true);
  // A zip64 archive says so with 0xffffffff in the 32-bit fields (what readers such as fflate look for).
  v.setUint32(12, lies.zip64Entries !== undefined ? 0xffffffff : cdSize, true);
  v.setUint32(16, lies.zip64Entries !== undefined ? 0xffffffff : cdOffset, true);
  parts.push(e);
  const out = new Uint8Array(offset + 22);
  let p = 0;
  for (const part of parts) {
    out.set(part, p);
    p += part.length;
  }
  return out;
}

/** A PyTorch zip checkpoint: `archive/data.pkl`, `archive/data/<key>`, byteorder, version. */
export function torchZip(pkl: Uint8Array, storages: Record<string, Uint8Array>, lies: ZipLies = {}): Uint8Array {
  return zip(
    [
      { name: 'archive/data.pkl', data: pkl },
      { name: 'archive/byteorder', data: enc.encode('little') },
      ...Object.entries(storages).map(([k, data]) => ({ name: `archive/data/${k}`, data })),
      { name: 'archive/version', data: enc.encode('3\n') },
    ],
    lies,
  );
}

/** safetensors with the given header (any JSON value, or raw header bytes) and data. */
export function safetensors(header: unknown, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const head = header instanceof Uint8Array ? header : enc.encode(JSON.stringify(header));
  const out = new Uint8Array(8 + head.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  out.set(data, 8 + head.length);
  return out;
}

export const f32 = (values: number[]): Uint8Array => new Uint8Array(Float32Array.from(values).buffer);

/** A small valid state_dict {w: [2, 3], b: [3]} in the zip format, and its values. */
export function tinyZip(): Uint8Array {
  const pkl = stateDictPickle([
    { name: 'w', key: '0', numel: 6, shape: [2, 3] },
    { name: 'b', key: '1', numel: 3, shape: [3] },
  ]);
  return torchZip(pkl, { '0': f32([1, 2, 3, 4, 5, 6]), '1': f32([7, 8, 9]) });
}

/** The same state_dict as safetensors. */
export function tinySafetensors(): Uint8Array {
  return safetensors(
    { w: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] }, b: { dtype: 'F32', shape: [3], data_offsets: [24, 36] } },
    f32([1, 2, 3, 4, 5, 6, 7, 8, 9]),
  );
}
