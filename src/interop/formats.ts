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
import { unzipSync, zipSync, type Zippable } from 'fflate';
import { DTYPE_SIZE, PickleError, pickleStateDict, unpickle, type PyValue, type StorageRef, type TensorRef, type TorchDtype } from './pickle.js';

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

/** A strided view of a storage → contiguous float32 (row-major), as PyTorch's `.contiguous()`. */
function tensorFrom(ref: TensorRef, storage: () => Uint8Array): TorchTensor {
  const { shape, stride, offset } = ref;
  const dtype = ref.storage.dtype;
  const n = numel(shape);
  if (shape.some((d) => d < 0) || stride.length !== shape.length || offset < 0) throw new FormatError(`tensor with invalid size/stride`);
  // Bounds: the largest element index reached must lie inside the storage.
  const last = n === 0 ? 0 : offset + shape.reduce((a, d, i) => a + (d - 1) * stride[i]!, 0);
  if (n > 0 && last >= ref.storage.numel) throw new FormatError(`tensor of size [${shape}] reaches past its storage of ${ref.storage.numel} elements`);
  return {
    kind: 'torch-tensor',
    dtype,
    shape,
    read: () => {
      const bytes = storage();
      const size = DTYPE_SIZE[dtype];
      if (bytes.length < ref.storage.numel * size)
        throw new FormatError(`storage '${ref.storage.key}' holds ${bytes.length} bytes, expected ${ref.storage.numel * size}`);
      const contiguous = stride.every((s, i) => shape[i] === 1 || s === numel(shape.slice(i + 1)));
      if (contiguous) return decode(bytes.subarray(offset * size, (offset + n) * size), dtype, n);
      const all = decode(bytes, dtype, ref.storage.numel);
      const out = new Float32Array(n);
      const idx = new Array<number>(shape.length).fill(0);
      for (let k = 0; k < n; k++) {
        let src = offset;
        for (let d = 0; d < shape.length; d++) src += idx[d]! * stride[d]!;
        out[k] = all[src]!;
        for (let d = shape.length - 1; d >= 0; d--) {
          if (++idx[d]! < shape[d]!) break;
          idx[d] = 0;
        }
      }
      return out;
    },
  };
}

/** Replaces every TensorRef in the pickled value by a TorchTensor reading from `storageOf`. */
function resolveTensors(value: PyValue, storageOf: (s: StorageRef) => Uint8Array): PyValue {
  if (Array.isArray(value)) return value.map((v) => resolveTensors(v, storageOf));
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [k, resolveTensors(v, storageOf)]));
  if (typeof value === 'object' && value !== null && (value as TensorRef).kind === 'tensor') {
    const ref = value as TensorRef;
    return tensorFrom(ref, () => storageOf(ref.storage));
  }
  return value;
}

function readTorchZip(buf: Uint8Array): PyValue {
  let files: Record<string, Uint8Array>;
  // torch.save stores entries uncompressed; a compressed entry may not inflate to more than 4× the file (+1 MiB),
  // so a zip bomb is refused before any memory is allocated for it.
  let budget = 4 * buf.length + 2 ** 20;
  let bomb = '';
  try {
    files = unzipSync(buf, {
      filter: (f) => {
        budget -= f.originalSize;
        if (budget < 0 && !bomb) bomb = f.name;
        return budget >= 0;
      },
    });
  } catch (e) {
    throw new FormatError(`not a readable zip archive (${(e as Error).message})`);
  }
  if (bomb) throw new FormatError(`zip entry '${bomb}' would inflate far beyond the file size`);
  const pkl = Object.keys(files).find((f) => /^[^/]+\/data\.pkl$/.test(f) || f === 'data.pkl');
  if (!pkl) throw new FormatError('zip archive without data.pkl: not a PyTorch checkpoint');
  const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
  const order = files[`${prefix}byteorder`];
  if (order && new TextDecoder().decode(order).trim() !== 'little') throw new FormatError('big-endian checkpoints are not supported');
  const value = unpickle(files[pkl]!).value;
  return resolveTensors(value, (s) => {
    const data = files[`${prefix}data/${s.key}`];
    if (!data) throw new FormatError(`storage '${s.key}' missing from the archive`);
    return data;
  });
}

function readTorchLegacy(buf: Uint8Array): PyValue {
  let pos = 0;
  const next = (): PyValue => {
    const r = unpickle(buf, pos);
    pos = r.end;
    return r.value;
  };
  const magic = next();
  if (magic !== 0x1950a86a20f9469cfc6cn) throw new FormatError('bad magic number: not a legacy PyTorch file');
  const protocol = next();
  if (protocol !== 1001) throw new FormatError(`unsupported legacy protocol ${String(protocol)}`);
  const sysInfo = next();
  if (sysInfo instanceof Map && sysInfo.get('little_endian') === false) throw new FormatError('big-endian checkpoints are not supported');
  const value = next();
  const keys = next();
  if (!Array.isArray(keys)) throw new FormatError('legacy storage key list missing');
  // Storages follow in key order, each as <int64 element count><raw bytes>; their dtypes come from the pickle.
  const dtypes = new Map<string, TorchDtype>();
  (function collect(v: PyValue): void {
    if (Array.isArray(v)) v.forEach(collect);
    else if (v instanceof Map) v.forEach(collect);
    else if (typeof v === 'object' && v !== null && (v as TensorRef).kind === 'tensor')
      dtypes.set((v as TensorRef).storage.key, (v as TensorRef).storage.dtype);
  })(value);
  const storages = new Map<string, Uint8Array>();
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (const k of keys) {
    const key = String(k);
    if (pos + 8 > buf.length) throw new FormatError(`truncated: storage '${key}' missing`);
    const count = Number(view.getBigInt64(pos, true));
    const size = DTYPE_SIZE[dtypes.get(key) ?? 'uint8'] * count;
    pos += 8;
    if (count < 0 || pos + size > buf.length) throw new FormatError(`truncated: storage '${key}' needs ${size} bytes`);
    storages.set(key, buf.subarray(pos, pos + size));
    pos += size;
  }
  return resolveTensors(value, (s) => {
    const data = storages.get(s.key);
    if (!data) throw new FormatError(`storage '${s.key}' missing from the file`);
    return data;
  });
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

function readSafetensors(buf: Uint8Array): Map<string, TorchTensor> {
  if (buf.length < 8) throw new FormatError('truncated safetensors header');
  const n = Number(new DataView(buf.buffer, buf.byteOffset).getBigUint64(0, true));
  if (8 + n > buf.length) throw new FormatError(`truncated: header of ${n} bytes, file has ${buf.length}`);
  let header: Record<string, { dtype?: string; shape?: number[]; data_offsets?: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + n))) as typeof header;
  } catch (e) {
    throw new FormatError(`safetensors header is not JSON (${(e as Error).message})`);
  }
  const data = buf.subarray(8 + n);
  const out = new Map<string, TorchTensor>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const dtype = ST_DTYPES[e.dtype ?? ''];
    if (!dtype) throw new FormatError(`tensor '${name}': unsupported dtype ${String(e.dtype)}`);
    const [b, end] = e.data_offsets ?? [-1, -1];
    if (!Array.isArray(e.shape) || !(b! >= 0 && end! >= b! && end! <= data.length))
      throw new FormatError(`tensor '${name}': offsets outside the data (truncated?)`);
    const count = numel(e.shape);
    if (end! - b! !== count * DTYPE_SIZE[dtype]) throw new FormatError(`tensor '${name}': ${end! - b!} bytes for shape [${e.shape}]`);
    const bytes = data.subarray(b!, end!);
    out.set(name, { kind: 'torch-tensor', dtype, shape: e.shape, read: () => decode(bytes, dtype, count) });
  }
  return out;
}

/** Reads any supported weight file into a JS value (dicts are Maps) whose tensors are TorchTensors. */
export function readWeightFile(buf: Uint8Array): { format: WeightFormat; value: PyValue } {
  const format = sniffFormat(buf);
  if (!format) throw new FormatError('not a PyTorch (.pt/.pth) or safetensors file');
  try {
    if (format === 'torch-zip') return { format, value: readTorchZip(buf) };
    if (format === 'torch-legacy') return { format, value: readTorchLegacy(buf) };
    return { format, value: readSafetensors(buf) };
  } catch (e) {
    if (e instanceof PickleError) throw new FormatError(`pickle: ${e.message}`);
    throw e;
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
