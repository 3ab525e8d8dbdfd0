/**
 * Weight files written by PyTorch, read into plain JS values whose tensors decode to float32 on demand, and the
 * two formats we write back:
 *
 * - PyTorch zip (torch.save since 1.6): `<name>/data.pkl` (restricted pickle, see pickle.ts) + `<name>/data/<key>`
 *   raw little-endian storages + `<name>/version`, `<name>/byteorder`. Zip handling is fflate's (sync, no deps).
 * - PyTorch legacy (before 1.6): five pickles back to back (magic number, protocol, sys_info, the object, the
 *   storage keys) followed by each storage as an int64 element count and its raw bytes.
 * - safetensors: an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, data.
 *
 * Every format problem is a FormatError with a one-line message; the caller adds the file name.
 */
import { zipSync, type Zippable } from 'fflate';
import { printable } from '../errors.js';
import { Budget, LimitError, LIMITS, quote } from './limits.js';
import { DTYPE_SIZE, PickleError, pickleStateDict, unpickle, type PyValue, type TensorRef, type TorchDtype } from './pickle.js';
import { ZipError, ZipReader } from './zip.js';

export class FormatError extends Error {}

/** A tensor read from a file; `read()` decodes (and converts to float32) only when asked. */
export interface TorchTensor {
  kind: 'torch-tensor';
  dtype: TorchDtype;
  shape: number[];
  read(): Float32Array;
}

export const isTorchTensor = (v: unknown): v is TorchTensor => typeof v === 'object' && v !== null && (v as TorchTensor).kind === 'torch-tensor';

export type WeightFormat = 'torch-zip' | 'torch-legacy' | 'safetensors';

/** Recognises the format from the first bytes (the extension is not trusted). */
export function sniffFormat(buf: Uint8Array): WeightFormat | null {
  if (buf.length >= 4 && buf[0] === 0x50 && buf[1] === 0x4b && buf[2] === 0x03 && buf[3] === 0x04) return 'torch-zip';
  // Legacy: PROTO 2, LONG1 of the 10-byte magic number 0x1950a86a20f9469cfc6c.
  if (buf.length >= 4 && buf[0] === 0x80 && buf[1] === 0x02 && buf[2] === 0x8a && buf[3] === 0x0a) return 'torch-legacy';
  if (buf.length >= 10 && buf[8] === 0x7b) return 'safetensors';
  return null;
}

/* ------------------------------------------------------------------------------------------ decoding */

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** `count` elements of `dtype` from little-endian bytes, as float32. */
function decode(bytes: Uint8Array, dtype: TorchDtype, count: number): Float32Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  switch (dtype) {
    case 'float32':
      if (bytes.byteOffset % 4 === 0) out.set(new Float32Array(bytes.buffer, bytes.byteOffset, count));
      else for (let i = 0; i < count; i++) out[i] = v.getFloat32(4 * i, true);
      break;
    case 'float64':
      for (let i = 0; i < count; i++) out[i] = v.getFloat64(8 * i, true);
      break;
    case 'float16':
      for (let i = 0; i < count; i++) out[i] = halfToFloat(v.getUint16(2 * i, true));
      break;
    case 'bfloat16': {
      // bfloat16 is the upper half of a float32.
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) u[i] = v.getUint16(2 * i, true) << 16;
      break;
    }
    case 'int64':
      for (let i = 0; i < count; i++) out[i] = Number(v.getBigInt64(8 * i, true));
      break;
    case 'int32':
      for (let i = 0; i < count; i++) out[i] = v.getInt32(4 * i, true);
      break;
    case 'int16':
      for (let i = 0; i < count; i++) out[i] = v.getInt16(2 * i, true);
      break;
    case 'int8':
      for (let i = 0; i < count; i++) out[i] = v.getInt8(i);
      break;
    case 'uint8':
    case 'bool':
      for (let i = 0; i < count; i++) out[i] = bytes[i]!;
      break;
  }
  return out;
}

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * A strided view of a storage → contiguous float32 (row-major), as PyTorch's `.contiguous()`. The whole range the
 * view can reach is checked, not only its last element: negative strides are refused (PyTorch refuses them too),
 * so the reachable indices are [offset, offset + Σ (size_i - 1)·stride_i] and both ends must lie in the storage.
 */
function tensorFrom(ref: TensorRef, storage: () => Uint8Array, budget: Budget): TorchTensor {
  const { shape, stride, offset } = ref;
  const dtype = ref.storage.dtype;
  const key = quote(ref.storage.key);
  if (stride.length !== shape.length) throw new FormatError(`tensor on storage ${key}: ${shape.length} sizes but ${stride.length} strides`);
  if (shape.some((d) => d < 0) || offset < 0) throw new FormatError(`tensor on storage ${key}: negative size or offset`);
  if (stride.some((s) => s < 0)) throw new FormatError(`tensor on storage ${key}: negative stride [${stride}] (PyTorch refuses them too)`);
  const n = numel(shape);
  const last = offset + shape.reduce((a, d, i) => a + Math.max(d - 1, 0) * stride[i]!, 0);
  if (n > 0 && !(Number.isSafeInteger(last) && last < ref.storage.numel)) {
    throw new FormatError(
      `tensor of size [${shape}] and stride [${stride}] at offset ${offset} reaches past its storage ${key} of ${ref.storage.numel} elements`,
    );
  }
  return {
    kind: 'torch-tensor',
    dtype,
    shape,
    read: guarded(() => {
      const bytes = storage();
      const size = DTYPE_SIZE[dtype];
      if (bytes.length < ref.storage.numel * size) throw new FormatError(`storage ${key} holds ${bytes.length} bytes, expected ${ref.storage.numel * size}`);
      budget.copy(4 * n, `tensor on storage ${key}`);
      const contiguous = stride.every((s, i) => shape[i] === 1 || s === numel(shape.slice(i + 1)));
      if (contiguous || n === 0) return decode(bytes.subarray(offset * size, (offset + n) * size), dtype, n);
      // Only the reachable span is decoded (views of one big storage each cost their own span, not the storage).
      budget.copy(4 * (last + 1 - offset), `tensor on storage ${key}`);
      const span = decode(bytes.subarray(offset * size, (last + 1) * size), dtype, last + 1 - offset);
      const out = new Float32Array(n);
      const idx = new Array<number>(shape.length).fill(0);
      for (let k = 0; k < n; k++) {
        let src = 0;
        for (let d = 0; d < shape.length; d++) src += idx[d]! * stride[d]!;
        out[k] = span[src]!;
        for (let d = shape.length - 1; d >= 0; d--) {
          if (++idx[d]! < shape[d]!) break;
          idx[d] = 0;
        }
      }
      return out;
    }),
  };
}

const isTensorRef = (v: unknown): v is TensorRef => typeof v === 'object' && v !== null && (v as TensorRef).kind === 'tensor';

/**
 * Replaces every TensorRef in the unpickled value by `leaf(ref)`, iteratively (the file decides the nesting, not
 * the JS stack) and once per object: memo-shared containers stay shared and cycles stay cycles, so a "billion
 * laughs" pickle (each level referencing the previous one twice) costs its size, not 2^levels. Nesting is limited to
 * LIMITS.depth and every element visited is counted against the budget.
 */
export function mapTensors(value: PyValue, leaf: (ref: TensorRef) => unknown, budget: Budget): PyValue {
  const done = new Map<object, unknown>();
  const work: { src: unknown[] | Map<unknown, unknown>; out: unknown[] | Map<unknown, unknown>; depth: number }[] = [];
  const convert = (v: unknown, depth: number): unknown => {
    if (typeof v !== 'object' || v === null || v instanceof Uint8Array) return v;
    if (done.has(v)) return done.get(v);
    if (depth > LIMITS.depth) throw new LimitError(`containers nested deeper than ${LIMITS.depth}`);
    let out: unknown;
    if (isTensorRef(v)) out = leaf(v);
    else if (Array.isArray(v) || v instanceof Map) {
      out = Array.isArray(v) ? [] : new Map();
      work.push({ src: v, out: out as unknown[] | Map<unknown, unknown>, depth });
    } else out = v; // storages, globals: plain data
    done.set(v, out);
    return out;
  };
  const root = convert(value, 0);
  for (let item = work.pop(); item; item = work.pop()) {
    const { src, out, depth } = item;
    budget.node(Array.isArray(src) ? src.length : src.size);
    if (Array.isArray(src)) for (const x of src) (out as unknown[]).push(convert(x, depth + 1));
    else for (const [k, x] of src) (out as Map<unknown, unknown>).set(k, convert(x, depth + 1));
  }
  return root;
}

function readTorchZip(buf: Uint8Array, budget: Budget): PyValue {
  const zip = new ZipReader(buf, budget);
  const pkl = zip.names().find((f) => /^[^/]+\/data\.pkl$/.test(f) || f === 'data.pkl');
  if (!pkl) throw new FormatError('zip archive without data.pkl: not a PyTorch checkpoint');
  const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
  const order = zip.read(`${prefix}byteorder`);
  if (order && new TextDecoder().decode(order).trim() !== 'little') throw new FormatError('big-endian checkpoints are not supported');
  const value = unpickle(zip.read(pkl)!, 0, budget).value;
  const storages = new Map<string, Uint8Array | undefined>(); // a deflated storage inflates once, however many views
  return mapTensors(
    value,
    (ref) =>
      tensorFrom(
        ref,
        () => {
          const name = `${prefix}data/${ref.storage.key}`;
          if (!storages.has(name)) storages.set(name, zip.read(name));
          const data = storages.get(name);
          if (!data) throw new FormatError(`storage ${quote(ref.storage.key)} missing from the archive`);
          return data;
        },
        budget,
      ),
    budget,
  );
}

function readTorchLegacy(buf: Uint8Array, budget: Budget): PyValue {
  let pos = 0;
  const next = (): PyValue => {
    const r = unpickle(buf, pos, budget);
    pos = r.end;
    return r.value;
  };
  const magic = next();
  if (magic !== 0x1950a86a20f9469cfc6cn) throw new FormatError('bad magic number: not a legacy PyTorch file');
  const protocol = next();
  if (protocol !== 1001) throw new FormatError(`unsupported legacy protocol ${quote(protocol)}`);
  const sysInfo = next();
  if (sysInfo instanceof Map && sysInfo.get('little_endian') === false) throw new FormatError('big-endian checkpoints are not supported');
  const value = next();
  const keys = next();
  if (!Array.isArray(keys)) throw new FormatError('legacy storage key list missing');
  // Storages follow in key order, each as <int64 element count><raw bytes>; their dtypes come from the pickle.
  const dtypes = new Map<string, TorchDtype>();
  const storages = new Map<string, Uint8Array>();
  const resolved = mapTensors(
    value,
    (ref) => {
      dtypes.set(ref.storage.key, ref.storage.dtype);
      return tensorFrom(
        ref,
        () => {
          const data = storages.get(ref.storage.key);
          if (!data) throw new FormatError(`storage ${quote(ref.storage.key)} missing from the file`);
          return data;
        },
        budget,
      );
    },
    budget,
  );
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (const k of keys) {
    if (typeof k !== 'string' && typeof k !== 'number') throw new FormatError('legacy storage keys must be strings');
    const key = String(k);
    if (pos + 8 > buf.length) throw new FormatError(`truncated: storage ${quote(key)} missing`);
    const count = Number(view.getBigInt64(pos, true));
    const size = DTYPE_SIZE[dtypes.get(key) ?? 'uint8'] * count;
    pos += 8;
    if (count < 0 || pos + size > buf.length) throw new FormatError(`truncated: storage ${quote(key)} needs ${size} bytes`);
    storages.set(key, buf.subarray(pos, pos + size));
    pos += size;
  }
  return resolved;
}

const ST_DTYPES: Record<string, TorchDtype> = {
  F32: 'float32',
  F64: 'float64',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * safetensors, checked as the format's own reader does: the header is a JSON object whose entries are objects with
 * a known `dtype` string, a `shape` list of non-negative integers and `data_offsets` a pair of integers within the
 * data, matching the shape; no two tensors share bytes.
 */
function readSafetensors(buf: Uint8Array): Map<string, TorchTensor> {
  if (buf.length < 8) throw new FormatError('truncated safetensors header');
  const n = Number(new DataView(buf.buffer, buf.byteOffset).getBigUint64(0, true));
  if (n > LIMITS.safetensorsHeader) throw new FormatError(`safetensors header of ${n} bytes, at most ${LIMITS.safetensorsHeader} allowed`);
  if (8 + n > buf.length) throw new FormatError(`truncated: header of ${n} bytes, file has ${buf.length}`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + n)));
  } catch (e) {
    throw new FormatError(`safetensors header is not JSON (${(e as Error).message})`);
  }
  if (!isObject(header)) throw new FormatError('safetensors header: expected a JSON object');
  const data = buf.subarray(8 + n);
  const out = new Map<string, TorchTensor>();
  const ranges: [number, number, string][] = [];
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (e !== null && !isObject(e)) throw new FormatError('safetensors __metadata__: expected an object of strings');
      continue;
    }
    const what = `tensor ${quote(name)}`;
    if (!isObject(e)) throw new FormatError(`${what}: expected an object {dtype, shape, data_offsets}`);
    const dtype = typeof e.dtype === 'string' && Object.hasOwn(ST_DTYPES, e.dtype) ? ST_DTYPES[e.dtype]! : undefined;
    if (!dtype) throw new FormatError(`${what}: unsupported dtype ${quote(JSON.stringify(e.dtype) ?? 'undefined')}`);
    const shape = e.shape;
    if (!Array.isArray(shape) || shape.length > LIMITS.tensorRank || !shape.every(isCount)) {
      throw new FormatError(`${what}: shape must be a list of at most ${LIMITS.tensorRank} non-negative integers`);
    }
    const offsets = e.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount))
      throw new FormatError(`${what}: data_offsets must be [begin, end] integers`);
    const [b, end] = offsets as [number, number];
    if (!(end >= b && end <= data.length)) throw new FormatError(`${what}: offsets [${b}, ${end}] outside the data of ${data.length} bytes (truncated?)`);
    const count = numel(shape as number[]);
    if (end - b !== count * DTYPE_SIZE[dtype]) throw new FormatError(`${what}: ${end - b} bytes for shape [${shape}]`);
    ranges.push([b, end, name]);
    const bytes = data.subarray(b, end);
    out.set(name, { kind: 'torch-tensor', dtype, shape: shape as number[], read: guarded(() => decode(bytes, dtype, count)) });
  }
  ranges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i]![0] < ranges[i - 1]![1])
      throw new FormatError(`tensors ${quote(ranges[i - 1]![2])} and ${quote(ranges[i]![2])} overlap in the data (the format forbids it)`);
  }
  return out;
}

/** Any error while reading a file, as the FormatError it is (a message that can be printed on one line). */
function asFormatError(e: unknown): FormatError {
  if (e instanceof FormatError) return e;
  if (e instanceof PickleError) return new FormatError(`pickle: ${e.message}`);
  if (e instanceof ZipError) return new FormatError(`not a readable zip archive (${e.message})`);
  if (e instanceof LimitError) return new FormatError(e.message);
  // Anything else (a RangeError of an allocation, a stack overflow) is still a file we cannot read: refuse it.
  const err = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return new FormatError(`unreadable (${printable(err.split('\n')[0] ?? '', 200)})`);
}

/** A tensor's read(), whose failures are FormatErrors (tensors are read after the file was parsed). */
const guarded = (read: () => Float32Array) => (): Float32Array => {
  try {
    return read();
  } catch (e) {
    throw asFormatError(e);
  }
};

/**
 * Reads any supported weight file into a JS value (dicts are Maps) whose tensors are TorchTensors. Every failure,
 * here and in a tensor's `read()`, is a FormatError.
 */
export function readWeightFile(buf: Uint8Array): { format: WeightFormat; value: PyValue } {
  const format = sniffFormat(buf);
  if (!format) throw new FormatError('not a PyTorch (.pt/.pth) or safetensors file');
  const budget = new Budget(buf.length);
  try {
    const value = format === 'torch-zip' ? readTorchZip(buf, budget) : format === 'torch-legacy' ? readTorchLegacy(buf, budget) : readSafetensors(buf);
    return { format, value };
  } catch (e) {
    throw asFormatError(e);
  }
}

/* ------------------------------------------------------------------------------------------ writing */

/** A tensor to write: float32 weights, or an int64 counter (BN num_batches_tracked). */
export interface OutTensor {
  name: string;
  dtype: 'float32' | 'int64';
  shape: number[];
  data: Float32Array | BigInt64Array;
}

const bytesOf = (t: OutTensor): Uint8Array => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/** safetensors with tensors in the given order; the header is padded with spaces to a multiple of 8 bytes. */
export function writeSafetensors(tensors: readonly OutTensor[], metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const n = t.data.byteLength;
    header[t.name] = { dtype: t.dtype === 'float32' ? 'F32' : 'I64', shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let p = 8 + head.length;
  for (const t of tensors) {
    out.set(bytesOf(t), p);
    p += t.data.byteLength;
  }
  return out;
}

/** PyTorch's zip format (what torch.save writes since 1.6), entries stored uncompressed under `<name>/`. */
export function writeTorchZip(tensors: readonly OutTensor[], name = 'archive'): Uint8Array {
  const pkl = pickleStateDict(tensors.map((t, i) => ({ name: t.name, dtype: t.dtype, shape: t.shape, storageKey: String(i) })));
  const enc = new TextEncoder();
  const files: Zippable = {
    [`${name}/data.pkl`]: pkl,
    [`${name}/byteorder`]: enc.encode('little'),
  };
  tensors.forEach((t, i) => {
    files[`${name}/data/${i}`] = bytesOf(t);
  });
  files[`${name}/version`] = enc.encode('3\n');
  // A fixed timestamp keeps the bytes a pure function of the weights.
  return zipSync(files, { level: 0, mtime: new Date(1980, 0, 1) });
}
