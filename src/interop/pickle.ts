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
import { Budget, LIMITS, quote } from './limits.js';

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
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new PickleError(`${what}: expected an integer`);
  return v;
};
const intTuple = (v: unknown, what: string): number[] => {
  if (!isArr(v)) throw new PickleError(`${what}: expected a tuple of integers`);
  if (v.length > LIMITS.tensorRank) throw new PickleError(`${what}: ${v.length} dimensions, at most ${LIMITS.tensorRank} allowed`);
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
  const full = `${module}.${name}`;
  if (!Object.hasOwn(GLOBALS, full)) {
    throw new PickleError(`refused global ${quote(full)} (only tensors, storages and OrderedDict are allowed; nothing was executed)`);
  }
  return GLOBALS[full]!;
}

function persistentLoad(pid: unknown): StorageRef {
  // torch.save writes ('storage', <storage type>, key, location, numel) for every storage.
  if (!isArr(pid) || pid[0] !== 'storage' || pid.length < 5) throw new PickleError('unsupported persistent id (expected a storage)');
  const type = pid[1] as Global;
  const storageName = type?.kind === 'global' ? type.name.replace(/^torch\./, '') : '';
  if (!Object.hasOwn(STORAGE_TYPES, storageName)) throw new PickleError('persistent id names no known storage type');
  const key = pid[2];
  if (typeof key !== 'string' && typeof key !== 'number') throw new PickleError('storage key must be a string');
  const numel = int(pid[4], 'storage size');
  if (numel < 0) throw new PickleError('storage size: expected a non-negative integer');
  return { kind: 'storage', dtype: STORAGE_TYPES[storageName]!, key: String(key), numel };
}

/**
 * Two's-complement little-endian bytes as an integer (pickle's LONG1/LONG4), in time linear in the length: one hex
 * string and one BigInt parse, not a shift per byte (quadratic: 1 MB took over 20 s).
 */
export function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = BigInt(`0x${Buffer.from(b).reverse().toString('hex')}`);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const latin1Decoder = new TextDecoder('latin1');

/**
 * The machine's state, and the only place where input is consumed and values are created: every read checks its
 * length against the bytes left (lengths are never negative, so the position only moves forward and the run ends),
 * every push and container element is counted against LIMITS.pickleNodes, MARKs against LIMITS.depth.
 */
export class PickleVM {
  pos: number;
  readonly stack: unknown[] = [];
  readonly marks: number[] = [];
  readonly memo = new Map<number, unknown>();
  /** Set by STOP. */
  result: { value: unknown } | undefined;
  private readonly view: DataView;

  constructor(
    readonly buf: Uint8Array,
    start: number,
    readonly budget: Budget,
  ) {
    this.pos = start;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /* input */
  private need(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) throw new PickleError(`invalid length ${n} at offset ${this.pos}`);
    if (this.pos + n > this.buf.length) throw new PickleError(`truncated pickle (needs ${n} more byte(s) at offset ${this.pos})`);
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }
  u16(): number {
    this.need(2);
    this.pos += 2;
    return this.view.getUint16(this.pos - 2, true);
  }
  u32(): number {
    this.need(4);
    this.pos += 4;
    return this.view.getUint32(this.pos - 4, true);
  }
  i32(): number {
    this.need(4);
    this.pos += 4;
    return this.view.getInt32(this.pos - 4, true);
  }
  u64(): number {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new PickleError(`length ${v} too large at offset ${this.pos - 8}`);
    return Number(v);
  }
  f64(): number {
    this.need(8);
    this.pos += 8;
    return this.view.getFloat64(this.pos - 8, false);
  }
  /** `n` bytes (a view, no copy); a negative or oversized `n` is refused. */
  bytes(n: number): Uint8Array {
    this.need(n);
    this.pos += n;
    return this.buf.subarray(this.pos - n, this.pos);
  }
  utf8(n: number): string {
    const at = this.pos;
    try {
      return utf8Decoder.decode(this.bytes(n));
    } catch (e) {
      if (e instanceof PickleError) throw e;
      throw new PickleError(`invalid UTF-8 in a string at offset ${at}`);
    }
  }
  latin1(n: number): string {
    return latin1Decoder.decode(this.bytes(n));
  }
  /** A protocol-0 text argument up to its newline (at most 256 bytes: module and attribute names, small ints). */
  line(): string {
    const nl = this.buf.subarray(this.pos, this.pos + 257).indexOf(10);
    if (nl < 0) throw new PickleError(`unterminated or over-long text line at offset ${this.pos}`);
    const s = latin1Decoder.decode(this.buf.subarray(this.pos, this.pos + nl));
    this.pos += nl + 1;
    return s;
  }
  lineInt(): number {
    const s = this.line();
    if (!/^-?\d{1,15}$/.test(s)) throw new PickleError(`expected an integer, got ${quote(s)}`);
    return Number.parseInt(s, 10);
  }

  /* stack */
  push(v: unknown): void {
    this.budget.node();
    this.stack.push(v);
  }
  pop(): unknown {
    if (this.stack.length === 0 || (this.marks.length > 0 && this.stack.length <= this.marks.at(-1)!)) throw new PickleError('stack underflow');
    return this.stack.pop();
  }
  top(): unknown {
    if (this.stack.length === 0 || (this.marks.length > 0 && this.stack.length <= this.marks.at(-1)!)) throw new PickleError('stack underflow');
    return this.stack[this.stack.length - 1];
  }
  mark(): void {
    if (this.marks.length >= LIMITS.depth) throw new PickleError(`MARKs nested deeper than ${LIMITS.depth}`);
    this.marks.push(this.stack.length);
  }
  popMark(): unknown[] {
    const m = this.marks.pop();
    if (m === undefined) throw new PickleError('MARK expected');
    return this.stack.splice(m);
  }

  /* containers */
  listAt(v: unknown, items: readonly unknown[]): void {
    if (!isArr(v)) throw new PickleError('APPEND(S) on a non-list');
    this.budget.node(items.length);
    for (const x of items) v.push(x); // not push(...items): a spread of 10^5 items overflows the JS stack
  }
  dictAt(v: unknown, items: readonly unknown[], what: string): void {
    if (!(v instanceof Map)) throw new PickleError(`${what} on a non-dict`);
    if (items.length % 2) throw new PickleError(`odd number of items in ${what}`);
    this.budget.node(items.length / 2);
    for (let i = 0; i < items.length; i += 2) v.set(hashable(items[i]), items[i + 1]);
  }
  memoGet(i: number): unknown {
    if (!this.memo.has(i)) throw new PickleError(`memo key ${i} missing`);
    return this.memo.get(i);
  }
  memoPut(i: number): void {
    this.budget.node();
    this.memo.set(i, this.top());
  }
}

function hashable(k: unknown): unknown {
  if (typeof k !== 'string' && typeof k !== 'number' && typeof k !== 'bigint' && typeof k !== 'boolean' && k !== null) {
    throw new PickleError('dict key must be a string or number');
  }
  return k;
}

const tuple = (n: number) => (vm: PickleVM) => {
  const items = new Array<unknown>(n);
  for (let i = n - 1; i >= 0; i--) items[i] = vm.pop();
  vm.push(items);
};

/**
 * The opcodes a `torch.save` stream uses (protocols 0-4), each a small handler of the VM; anything else is refused
 * by name before it runs. Python values as JS: dict → Map, list/tuple → array, int → number (bigint beyond 2^53).
 */
export const OPCODES: ReadonlyMap<number, { name: string; run: (vm: PickleVM) => void }> = new Map(
  (
    [
      [0x80, 'PROTO', (vm) => void vm.u8()],
      [0x95, 'FRAME', (vm) => void vm.u64()], // protocol 4: a length hint only
      [0x2e, 'STOP', (vm) => (vm.result = { value: vm.pop() })],
      [0x28, 'MARK', (vm) => vm.mark()],
      [0x30, 'POP', (vm) => void vm.pop()],
      [0x31, 'POP_MARK', (vm) => void vm.popMark()],
      [0x32, 'DUP', (vm) => vm.push(vm.top())],
      [0x4e, 'NONE', (vm) => vm.push(null)],
      [0x88, 'NEWTRUE', (vm) => vm.push(true)],
      [0x89, 'NEWFALSE', (vm) => vm.push(false)],
      [0x4a, 'BININT', (vm) => vm.push(vm.i32())],
      [0x4b, 'BININT1', (vm) => vm.push(vm.u8())],
      [0x4d, 'BININT2', (vm) => vm.push(vm.u16())],
      [0x8a, 'LONG1', (vm) => vm.push(decodeLong(vm.bytes(vm.u8())))],
      [0x8b, 'LONG4', (vm) => vm.push(decodeLong(vm.bytes(vm.i32())))],
      [
        0x49,
        'INT',
        (vm) => {
          const s = vm.line();
          if (s === '00' || s === '01') return vm.push(s === '01');
          if (!/^-?\d{1,15}$/.test(s)) throw new PickleError(`INT: expected an integer, got ${quote(s)}`);
          vm.push(Number.parseInt(s, 10));
        },
      ],
      [0x47, 'BINFLOAT', (vm) => vm.push(vm.f64())],
      [0x8c, 'SHORT_BINUNICODE', (vm) => vm.push(vm.utf8(vm.u8()))],
      [0x58, 'BINUNICODE', (vm) => vm.push(vm.utf8(vm.u32()))],
      [0x8d, 'BINUNICODE8', (vm) => vm.push(vm.utf8(vm.u64()))],
      [0x55, 'SHORT_BINSTRING', (vm) => vm.push(vm.latin1(vm.u8()))], // Python 2
      [0x54, 'BINSTRING', (vm) => vm.push(vm.latin1(vm.i32()))], // Python 2; a negative length is refused by bytes()
      [0x43, 'SHORT_BINBYTES', (vm) => vm.push(vm.bytes(vm.u8()))],
      [0x42, 'BINBYTES', (vm) => vm.push(vm.bytes(vm.u32()))],
      [0x29, 'EMPTY_TUPLE', (vm) => vm.push([])],
      [0x74, 'TUPLE', (vm) => vm.push(vm.popMark())],
      [0x85, 'TUPLE1', tuple(1)],
      [0x86, 'TUPLE2', tuple(2)],
      [0x87, 'TUPLE3', tuple(3)],
      [0x5d, 'EMPTY_LIST', (vm) => vm.push([])],
      [0x6c, 'LIST', (vm) => vm.push(vm.popMark())],
      [
        0x61,
        'APPEND',
        (vm) => {
          const v = vm.pop();
          vm.listAt(vm.top(), [v]);
        },
      ],
      [
        0x65,
        'APPENDS',
        (vm) => {
          const items = vm.popMark();
          vm.listAt(vm.top(), items);
        },
      ],
      [0x7d, 'EMPTY_DICT', (vm) => vm.push(new Map())],
      [
        0x64,
        'DICT',
        (vm) => {
          const d = new Map();
          vm.dictAt(d, vm.popMark(), 'DICT');
          vm.push(d);
        },
      ],
      [
        0x73,
        'SETITEM',
        (vm) => {
          const v = vm.pop();
          const k = vm.pop();
          vm.dictAt(vm.top(), [k, v], 'SETITEM');
        },
      ],
      [
        0x75,
        'SETITEMS',
        (vm) => {
          const items = vm.popMark();
          vm.dictAt(vm.top(), items, 'SETITEMS');
        },
      ],
      [0x71, 'BINPUT', (vm) => vm.memoPut(vm.u8())],
      [0x72, 'LONG_BINPUT', (vm) => vm.memoPut(vm.u32())],
      [0x94, 'MEMOIZE', (vm) => vm.memoPut(vm.memo.size)],
      [0x70, 'PUT', (vm) => vm.memoPut(vm.lineInt())],
      [0x68, 'BINGET', (vm) => vm.push(vm.memoGet(vm.u8()))],
      [0x6a, 'LONG_BINGET', (vm) => vm.push(vm.memoGet(vm.u32()))],
      [0x67, 'GET', (vm) => vm.push(vm.memoGet(vm.lineInt()))],
      [
        0x63,
        'GLOBAL',
        (vm) => {
          const module = vm.line();
          vm.push(resolveGlobal(module, vm.line()));
        },
      ],
      [
        0x93,
        'STACK_GLOBAL',
        (vm) => {
          const name = vm.pop();
          const module = vm.pop();
          if (typeof module !== 'string' || typeof name !== 'string') throw new PickleError('STACK_GLOBAL needs two strings');
          vm.push(resolveGlobal(module, name));
        },
      ],
      [0x51, 'BINPERSID', (vm) => vm.push(persistentLoad(vm.pop()))],
      [
        0x52,
        'REDUCE',
        (vm) => {
          const args = vm.pop();
          const fn = vm.pop() as Global;
          if (fn?.kind !== 'global' || !fn.call || !isArr(args)) throw new PickleError('REDUCE of something that is not an allowed callable');
          vm.push(fn.call(args));
        },
      ],
      [
        0x62,
        'BUILD', // only an OrderedDict's attributes (state_dict._metadata), which we do not need
        (vm) => {
          vm.pop();
          if (!(vm.top() instanceof Map)) throw new PickleError('BUILD is only allowed on an OrderedDict');
        },
      ],
    ] as [number, string, (vm: PickleVM) => void][]
  ).map(([op, name, run]) => [op, { name, run }]),
);

export interface UnpickleResult {
  value: PyValue;
  /** Offset just past the STOP opcode (the legacy format has several pickles back to back). */
  end: number;
}

/**
 * Runs the restricted unpickler on `buf` from `start`. Throws PickleError on anything outside the subset and
 * LimitError when a budget is spent. Every opcode consumes at least one byte and no length is negative, so the run
 * takes at most as many steps as the buffer has bytes.
 */
export function unpickle(buf: Uint8Array, start = 0, budget = new Budget(buf.length)): UnpickleResult {
  const vm = new PickleVM(buf, start, budget);
  while (!vm.result) {
    const at = vm.pos;
    const op = vm.u8();
    const handler = OPCODES.get(op);
    if (!handler)
      throw new PickleError(`refused opcode 0x${op.toString(16).padStart(2, '0')} at offset ${at} (not used by a state_dict; nothing was executed)`);
    handler.run(vm);
  }
  return { value: vm.result.value, end: vm.pos };
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
