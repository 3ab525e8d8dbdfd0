/**
 * A restricted unpickler for PyTorch state_dicts, and the matching minimal pickler.
 *
 * A pickle is a program for a stack machine: its GLOBAL opcode names any Python callable and REDUCE calls it, so
 * reading an untrusted pickle with a general unpickler is running untrusted code. This reader accepts only the
 * opcodes a `torch.save(state_dict)` stream uses and only the globals listed in GLOBALS (tensor rebuilders,
 * storage types, OrderedDict); every other opcode or global is refused by name before anything is built. Nothing
 * is ever "called" except the few JS functions in GLOBALS, which only build plain data.
 *
 * Why our own VM rather than the npm `pickleparser` (the only maintained-looking JS pickle reader): its name
 * resolver can be restricted, but every opcode is accepted (INST/OBJ/NEWOBJ construct whatever is on the stack,
 * BUILD calls a `__setstate__` found on stack objects, DICT writes keys as JS properties so a `__proto__` key
 * replaces an object's prototype), there are no stack/mark underflow checks, and it has had a single release.
 * Restricting opcodes would mean reimplementing its dispatch anyway; the state_dict subset is ~40 opcodes.
 */

/** A storage reference from a persistent id: ('storage', <dtype>Storage, key, location, numel). */
export interface StorageRef {
  kind: 'storage';
  dtype: TorchDtype;
  key: string;
  numel: number;
}

/** A tensor as the pickle describes it: a strided view of a storage. */
export interface TensorRef {
  kind: 'tensor';
  storage: StorageRef;
  offset: number;
  shape: number[];
  stride: number[];
}

export type TorchDtype = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export const DTYPE_SIZE: Record<TorchDtype, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

const STORAGE_TYPES: Record<string, TorchDtype> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

/** Marker for a whitelisted global on the stack. */
interface Global {
  kind: 'global';
  name: string;
  call?: (args: unknown[]) => unknown;
}

/** Python values as JS: dict → Map, list/tuple → array, int → number (bigint beyond 2^53), None → null. */
export type PyValue = unknown;

export class PickleError extends Error {}

const isArr = (v: unknown): v is unknown[] => Array.isArray(v);
const int = (v: unknown, what: string): number => {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new PickleError(`${what}: expected an integer`);
  return v;
};
const intTuple = (v: unknown, what: string): number[] => {
  if (!isArr(v)) throw new PickleError(`${what}: expected a tuple of integers`);
  return v.map((x) => int(x, what));
};

function rebuildTensor(args: unknown[]): TensorRef {
  const [storage, offset, size, stride] = args;
  if (typeof storage !== 'object' || storage === null || (storage as StorageRef).kind !== 'storage') {
    throw new PickleError('_rebuild_tensor: first argument is not a storage');
  }
  return {
    kind: 'tensor',
    storage: storage as StorageRef,
    offset: int(offset, 'tensor offset'),
    shape: intTuple(size, 'tensor size'),
    stride: intTuple(stride, 'tensor stride'),
  };
}

/** The only globals a state_dict pickle may name. Storage types are only valid inside a persistent id. */
const GLOBALS: Record<string, Global> = {
  'collections.OrderedDict': { kind: 'global', name: 'collections.OrderedDict', call: () => new Map() },
  'torch._utils._rebuild_tensor_v2': { kind: 'global', name: 'torch._utils._rebuild_tensor_v2', call: rebuildTensor },
  'torch._utils._rebuild_tensor': { kind: 'global', name: 'torch._utils._rebuild_tensor', call: rebuildTensor },
  // A Parameter pickles as its data plus flags; the data is all we want.
  'torch._utils._rebuild_parameter': {
    kind: 'global',
    name: 'torch._utils._rebuild_parameter',
    call: (args) => {
      if ((args[0] as TensorRef | undefined)?.kind !== 'tensor') throw new PickleError('_rebuild_parameter: expected a tensor');
      return args[0];
    },
  },
};
for (const name of Object.keys(STORAGE_TYPES)) GLOBALS[`torch.${name}`] = { kind: 'global', name: `torch.${name}` };

function resolveGlobal(module: string, name: string): Global {
  const g = GLOBALS[`${module}.${name}`];
  if (!g) throw new PickleError(`refused global '${module}.${name}' (only tensors, storages and OrderedDict are allowed; nothing was executed)`);
  return g;
}

function persistentLoad(pid: unknown): StorageRef {
  // torch.save writes ('storage', <storage type>, key, location, numel) for every storage.
  if (!isArr(pid) || pid[0] !== 'storage' || pid.length < 5) throw new PickleError('unsupported persistent id (expected a storage)');
  const type = pid[1] as Global;
  const dtype = type?.kind === 'global' ? STORAGE_TYPES[type.name.replace(/^torch\./, '')] : undefined;
  if (!dtype) throw new PickleError('persistent id names no known storage type');
  const key = pid[2];
  if (typeof key !== 'string' && typeof key !== 'number') throw new PickleError('storage key must be a string');
  return { kind: 'storage', dtype, key: String(key), numel: int(pid[4], 'storage size') };
}

export interface UnpickleResult {
  value: PyValue;
  /** Offset just past the STOP opcode (the legacy format has several pickles back to back). */
  end: number;
}

/** Runs the restricted unpickler on `buf` from `start`. Throws PickleError on anything outside the subset. */
export function unpickle(buf: Uint8Array, start = 0): UnpickleResult {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = start;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const need = (n: number): void => {
    if (pos + n > buf.length) throw new PickleError(`truncated pickle (needs ${n} more byte(s) at offset ${pos})`);
  };
  const u8 = (): number => (need(1), buf[pos++]!);
  const u16 = (): number => (need(2), (pos += 2), view.getUint16(pos - 2, true));
  const u32 = (): number => (need(4), (pos += 4), view.getUint32(pos - 4, true));
  const i32 = (): number => (need(4), (pos += 4), view.getInt32(pos - 4, true));
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new PickleError('length too large');
    return Number(v);
  };
  const bytes = (n: number): Uint8Array => (need(n), (pos += n), buf.subarray(pos - n, pos));
  const utf8 = (n: number): string => new TextDecoder('utf-8', { fatal: true }).decode(bytes(n));
  const line = (): string => {
    const nl = buf.indexOf(10, pos);
    if (nl < 0) throw new PickleError('truncated pickle (unterminated line)');
    const s = new TextDecoder('latin1').decode(buf.subarray(pos, nl));
    pos = nl + 1;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks.at(-1)!)) throw new PickleError('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) throw new PickleError('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) throw new PickleError('MARK expected');
    return stack.splice(m);
  };
  const long = (b: Uint8Array): number | bigint => {
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b.length > 0 && b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const memoGet = (i: number): unknown => {
    if (!memo.has(i)) throw new PickleError(`memo key ${i} missing`);
    return memo.get(i);
  };
  const dictOf = (v: unknown): Map<unknown, unknown> => {
    if (!(v instanceof Map)) throw new PickleError('SETITEM(S) on a non-dict');
    return v;
  };
  const listOf = (v: unknown): unknown[] => {
    if (!isArr(v)) throw new PickleError('APPEND(S) on a non-list');
    return v;
  };
  const hashable = (k: unknown): unknown => {
    if (typeof k !== 'string' && typeof k !== 'number' && typeof k !== 'bigint' && typeof k !== 'boolean' && k !== null) {
      throw new PickleError('dict key must be a string or number');
    }
    return k;
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME (protocol 4): a length hint only
        u64();
        break;
      case 0x2e: {
        // STOP
        const value = pop();
        return { value, end: pos };
      }
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(long(bytes(u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = i32();
        if (n < 0) throw new PickleError('negative LONG4 length');
        stack.push(long(bytes(n)));
        break;
      }
      case 0x49: {
        // INT (protocol 0)
        const s = line();
        stack.push(s === '00' ? false : s === '01' ? true : Number.parseInt(s, 10));
        break;
      }
      case 0x47: // BINFLOAT
        need(8);
        pos += 8;
        stack.push(view.getFloat64(pos - 8, false));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8(u8()));
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8(u32()));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(utf8(u64()));
        break;
      case 0x55: // SHORT_BINSTRING (Python 2)
        stack.push(new TextDecoder('latin1').decode(bytes(u8())));
        break;
      case 0x54: // BINSTRING (Python 2)
        stack.push(new TextDecoder('latin1').decode(bytes(i32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(bytes(u8()));
        break;
      case 0x42: // BINBYTES
        stack.push(bytes(u32()));
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        const b = pop();
        const a = pop();
        stack.push([a, b]);
        break;
      } // TUPLE2
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push([a, b, c]);
        break;
      } // TUPLE3
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x61: {
        const v = pop();
        listOf(top()).push(v);
        break;
      } // APPEND
      case 0x65: {
        const items = popMark();
        listOf(top()).push(...items);
        break;
      } // APPENDS
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        if (items.length % 2) throw new PickleError('odd number of items in DICT');
        const d = new Map();
        for (let i = 0; i < items.length; i += 2) d.set(hashable(items[i]), items[i + 1]);
        stack.push(d);
        break;
      }
      case 0x73: {
        const v = pop();
        const k = pop();
        dictOf(top()).set(hashable(k), v);
        break;
      } // SETITEM
      case 0x75: {
        // SETITEMS
        const items = popMark();
        if (items.length % 2) throw new PickleError('odd number of items in SETITEMS');
        const d = dictOf(top());
        for (let i = 0; i < items.length; i += 2) d.set(hashable(items[i]), items[i + 1]);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x70: // PUT
        memo.set(Number.parseInt(line(), 10), top());
        break;
      case 0x68: // BINGET
        stack.push(memoGet(u8()));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(memoGet(u32()));
        break;
      case 0x67: // GET
        stack.push(memoGet(Number.parseInt(line(), 10)));
        break;
      case 0x63: {
        const module = line();
        const name = line();
        stack.push(resolveGlobal(module, name));
        break;
      } // GLOBAL
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new PickleError('STACK_GLOBAL needs two strings');
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x51: // BINPERSID
        stack.push(persistentLoad(pop()));
        break;
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop() as Global;
        if (fn?.kind !== 'global' || !fn.call || !isArr(args)) throw new PickleError('REDUCE of something that is not an allowed callable');
        stack.push(fn.call(args));
        break;
      }
      case 0x62: {
        // BUILD: only an OrderedDict's attributes (state_dict._metadata), which we do not need
        pop();
        if (!(top() instanceof Map)) throw new PickleError('BUILD is only allowed on an OrderedDict');
        break;
      }
      default:
        throw new PickleError(`refused opcode 0x${op.toString(16).padStart(2, '0')} at offset ${at} (not used by a state_dict; nothing was executed)`);
    }
  }
}

/* ------------------------------------------------------------------------------------------------ writer */

/** One entry of a state_dict to pickle: the storage key and its layout. */
export interface PickleTensor {
  name: string;
  dtype: 'float32' | 'int64';
  shape: number[];
  storageKey: string;
}

/**
 * Pickles `OrderedDict(name → tensor)` (protocol 2) the way torch.save does: each tensor is
 * `_rebuild_tensor_v2(persistent storage, 0, size, contiguous stride, False, OrderedDict())`. The stream uses only
 * globals that `torch.load(weights_only=True)` allows.
 */
export function pickleStateDict(entries: readonly PickleTensor[]): Uint8Array {
  const out: number[] = [];
  const enc = new TextEncoder();
  const op = (...b: number[]): void => void out.push(...b);
  const global = (module: string, name: string): void => op(0x63, ...enc.encode(`${module}\n${name}\n`));
  const str = (s: string): void => {
    const b = enc.encode(s);
    op(0x58, b.length & 255, (b.length >> 8) & 255, (b.length >> 16) & 255, (b.length >>> 24) & 255, ...b);
  };
  const binint = (n: number): void => op(0x4a, n & 255, (n >> 8) & 255, (n >> 16) & 255, (n >>> 24) & 255);
  const tuple = (xs: number[]): void => {
    if (xs.length === 0) return op(0x29);
    op(0x28);
    xs.forEach(binint);
    op(0x74);
  };
  const orderedDict = (): void => (global('collections', 'OrderedDict'), op(0x29, 0x52));

  op(0x80, 2);
  orderedDict();
  op(0x28); // MARK for SETITEMS
  for (const t of entries) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const stride = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
    str(t.name);
    global('torch._utils', '_rebuild_tensor_v2');
    op(0x28); // args
    op(0x28); // persistent id tuple
    str('storage');
    global('torch', t.dtype === 'float32' ? 'FloatStorage' : 'LongStorage');
    str(t.storageKey);
    str('cpu');
    binint(numel);
    op(0x74, 0x51); // TUPLE, BINPERSID
    binint(0);
    tuple(t.shape);
    tuple(stride);
    op(0x89); // requires_grad False
    orderedDict(); // backward hooks
    op(0x74, 0x52); // TUPLE, REDUCE
  }
  op(0x75, 0x2e); // SETITEMS, STOP
  return Uint8Array.from(out);
}
