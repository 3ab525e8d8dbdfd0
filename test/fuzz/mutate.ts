/**
 * Structure-aware mutations of weight files, a pure function of a seeded RNG: pickles are cut into opcodes and
 * mutated as opcode lists (delete, repeat, swap, insert hostile opcodes, change length and integer arguments), zip
 * archives as records (members re-pickled, sizes and counts lied about, members aliased, deflated), safetensors as
 * JSON headers (wrong types, offsets, shapes, dtypes, control characters) — plus plain byte mutations of all three.
 */
import { Budget } from '../../src/interop/limits.js';
import { ZipReader } from '../../src/interop/zip.js';
import { Pickle, safetensors, zip, type ZipMember } from './build.js';

export type Rng = () => number;

/** mulberry32: the fuzzer's only source of randomness. */
export function rngOf(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const int = (r: Rng, n: number): number => Math.floor(r() * n);
const INTERESTING = [0, 1, -1, 2, 7, 8, 255, 256, 65535, 65536, 0x7fffffff, -0x80000000, 0xffffffff, 2 ** 31 - 9, 1 << 20, -6];

/* ------------------------------------------------------------------------------------------ bytes */

export function mutateBytes(r: Rng, input: Uint8Array): Uint8Array {
  const b = Uint8Array.from(input);
  if (b.length === 0) return Uint8Array.of(int(r, 256));
  switch (int(r, 7)) {
    case 0: // flip bits
      for (let i = 0, n = 1 + int(r, 8); i < n; i++) b[int(r, b.length)]! ^= 1 << int(r, 8);
      return b;
    case 1: {
      // an interesting 32-bit value somewhere
      if (b.length < 4) return b.subarray(1);
      new DataView(b.buffer).setInt32(int(r, b.length - 3), pick(r, INTERESTING), true);
      return b;
    }
    case 2: // truncate
      return b.subarray(0, int(r, b.length));
    case 3: {
      // delete a range
      const at = int(r, b.length);
      const n = 1 + int(r, Math.min(64, b.length - at));
      return Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + n)]);
    }
    case 4: {
      // duplicate a range
      const at = int(r, b.length);
      const n = 1 + int(r, Math.min(256, b.length - at));
      const out = new Uint8Array(b.length + n);
      out.set(b.subarray(0, at + n));
      out.set(b.subarray(at, at + n), at + n);
      out.set(b.subarray(at + n), at + 2 * n);
      return out;
    }
    case 5: // random bytes
      for (let i = 0, n = 1 + int(r, 16); i < n; i++) b[int(r, b.length)] = int(r, 256);
      return b;
    default: // special bytes
      for (let i = 0, n = 1 + int(r, 4); i < n; i++) b[int(r, b.length)] = pick(r, [0, 0x7f, 0x80, 0xff, 0x0a, 0x1b, 0x28, 0x2e]);
      return b;
  }
}

/* ------------------------------------------------------------------------------------------ pickles */

/** Argument layout of the opcodes we read: fixed byte count, or a length prefix of 1/4/8 bytes, or text lines. */
const ARGS: Record<number, { fixed?: number; len?: 1 | 4 | 8; lines?: number }> = {
  0x80: { fixed: 1 },
  0x95: { fixed: 8 },
  0x4a: { fixed: 4 },
  0x4b: { fixed: 1 },
  0x4d: { fixed: 2 },
  0x47: { fixed: 8 },
  0x71: { fixed: 1 },
  0x72: { fixed: 4 },
  0x68: { fixed: 1 },
  0x6a: { fixed: 4 },
  0x8a: { len: 1 },
  0x8b: { len: 4 },
  0x8c: { len: 1 },
  0x58: { len: 4 },
  0x8d: { len: 8 },
  0x55: { len: 1 },
  0x54: { len: 4 },
  0x43: { len: 1 },
  0x42: { len: 4 },
  0x49: { lines: 1 },
  0x70: { lines: 1 },
  0x67: { lines: 1 },
  0x63: { lines: 2 },
};

/** A pickle cut into opcodes with their arguments (null if it does not parse as a sequence of known opcodes). */
export function tokenize(b: Uint8Array): Uint8Array[] | null {
  const ops: Uint8Array[] = [];
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = 0;
  while (p < b.length) {
    const at = p;
    const a = ARGS[b[p++]!] ?? {};
    if (a.fixed) p += a.fixed;
    else if (a.len) {
      if (p + a.len > b.length) return null;
      const n = a.len === 1 ? b[p]! : a.len === 4 ? v.getInt32(p, true) : Number(v.getBigUint64(p, true));
      if (n < 0 || n > b.length) return null;
      p += a.len + n;
    } else if (a.lines) {
      for (let i = 0; i < a.lines; i++) {
        const nl = b.indexOf(10, p);
        if (nl < 0) return null;
        p = nl + 1;
      }
    }
    if (p > b.length) return null;
    ops.push(b.subarray(at, p));
    if (b[at] === 0x2e) break;
  }
  return ops;
}

const concat = (parts: readonly ArrayLike<number>[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

/** Hostile opcode snippets to insert. */
function snippet(r: Rng): Uint8Array {
  const p = new Pickle();
  switch (int(r, 14)) {
    case 0:
      return Uint8Array.of(pick(r, [0x28, 0x32, 0x30, 0x31, 0x61, 0x65, 0x73, 0x75, 0x74, 0x6c, 0x64, 0x52, 0x62, 0x51, 0x94, 0x5d, 0x7d, 0x29, 0x4e]));
    case 1:
      return Uint8Array.from(p.op(0x54).i32(pick(r, [-1, -6, -100, 0x7fffffff])).out); // BINSTRING with a lying length
    case 2:
      return Uint8Array.from(p.op(0x58).i32(3).raw([0xff, 0xc0, 0x80]).out); // invalid UTF-8
    case 3:
      return Uint8Array.from(p.op(0x6a).i32(int(r, 8)).out); // LONG_BINGET
    case 4:
      return Uint8Array.from(p.op(0x72).i32(int(r, 8)).out); // LONG_BINPUT
    case 5: {
      const n = 1 + int(r, 4096);
      return Uint8Array.from(p.op(0x8b).i32(n).raw(new Uint8Array(n).fill(0xff)).out); // LONG4
    }
    case 6:
      return Uint8Array.from(
        p.global(pick(r, ['posix', 'builtins', 'torch', '__proto__', 'collections']), pick(r, ['system', 'eval', 'FloatStorage', 'constructor', 'OrderedDict']))
          .out,
      );
    case 7: {
      // a run of EMPTY_LIST + APPEND: nesting
      const n = 1 + int(r, 5000);
      return concat([new Uint8Array(n).fill(0x5d), new Uint8Array(n - 1).fill(0x61)]);
    }
    case 8: {
      // memo doubling
      const q = new Pickle().emptyList().put(100);
      for (let i = 1, n = 1 + int(r, 80); i <= n; i++)
        q.mark()
          .get(99 + i)
          .get(99 + i)
          .op(0x6c)
          .put(100 + i);
      return Uint8Array.from(q.out);
    }
    case 9:
      return Uint8Array.from(p.binint(pick(r, INTERESTING)).out);
    case 10:
      return Uint8Array.from(p.str(pick(r, ['\x1b[2J', 'storage', '__proto__', 'constructor', 'state_dict', 'module.w', '\u202e'])).out);
    case 11:
      return Uint8Array.from(p.op(0x49).raw(new TextEncoder().encode(`${pick(r, ['00', '01', '-1', '99999999999999999999', 'x', ''])}\n`)).out);
    case 12:
      return Uint8Array.from(p.op(0x95).raw(new Uint8Array(8).fill(0xff)).out); // FRAME with a huge length
    default:
      return Uint8Array.of(int(r, 256)); // any opcode
  }
}

/** A pickle mutated as a list of opcodes (falls back to bytes when it does not tokenize). */
export function mutatePickle(r: Rng, pkl: Uint8Array): Uint8Array {
  const ops = tokenize(pkl);
  if (!ops || ops.length === 0 || r() < 0.15) return mutateBytes(r, pkl);
  const out = [...ops];
  for (let k = 0, n = 1 + int(r, 3); k < n; k++) {
    const i = int(r, out.length);
    switch (int(r, 7)) {
      case 0:
        out.splice(i, 1 + int(r, 3));
        break;
      case 1: {
        const block = out.slice(i, i + 1 + int(r, 8));
        for (let j = 0, m = 1 + int(r, 3); j < m; j++) out.splice(i, 0, ...block);
        break;
      }
      case 2: {
        const j = int(r, out.length);
        [out[i], out[j]] = [out[j]!, out[i]!];
        break;
      }
      case 3:
      case 4:
        out.splice(i, 0, snippet(r));
        break;
      case 5: {
        // change an argument: an integer or a length prefix
        const op = Uint8Array.from(out[i]!);
        if (op.length >= 5) new DataView(op.buffer).setInt32(1, pick(r, INTERESTING), true);
        else if (op.length >= 2) op[1] = pick(r, [0, 1, 0x7f, 0x80, 0xff]);
        out[i] = op;
        break;
      }
      default:
        out[i] = mutateBytes(r, out[i]!);
    }
  }
  return concat(out);
}

/* ------------------------------------------------------------------------------------------ zip */

export function mutateZip(r: Rng, input: Uint8Array): Uint8Array {
  // Our own reader, not fflate's unzipSync: a mutant with a lying zip64 count kept unzipSync busy for hours.
  let members: ZipMember[];
  try {
    const z = new ZipReader(input, new Budget(input.length));
    members = z.names().map((name) => ({ name, data: z.read(name)! }));
  } catch {
    return mutateBytes(r, input);
  }
  if (members.length === 0) return mutateBytes(r, input);
  const choice = int(r, 8);
  if (choice <= 2) {
    // the pickle
    const m = members.find((x) => x.name.endsWith('data.pkl')) ?? members[0]!;
    m.data = mutatePickle(r, m.data);
  } else if (choice === 3) {
    // a storage's bytes: shorter, longer, or another member's
    const m = pick(r, members);
    m.data = r() < 0.5 ? m.data.subarray(0, int(r, m.data.length + 1)) : mutateBytes(r, m.data);
  } else if (choice === 4) {
    const m = pick(r, members);
    m.deflate = true;
    if (r() < 0.5) m.declaredSize = pick(r, [0, 1, Math.floor(m.data.length / 2), m.data.length + 1, 0xfffffffe, m.data.length * 1000]);
  } else if (choice === 5) {
    // rename, drop or duplicate a member
    const i = int(r, members.length);
    const m = members[i]!;
    const k = int(r, 3);
    if (k === 0) members.splice(i, 1);
    else if (k === 1) members.push({ ...m });
    else m.name = pick(r, ['data.pkl', 'archive/data/0', 'archive/data/\x1b[2J', 'a/b/data.pkl', `${m.name}/`]);
  }
  const lies =
    choice === 6
      ? { aliases: { target: int(r, members.length), count: 1 + int(r, 2000) } }
      : choice === 7
        ? { zip64Entries: BigInt(pick(r, [members.length, 0, 1, 2 ** 16, 2 ** 40, Number.MAX_SAFE_INTEGER])) }
        : {};
  const out = zip(members, lies);
  return r() < 0.2 ? mutateBytes(r, out) : out;
}

/* ------------------------------------------------------------------------------------------ legacy */

/** The legacy format's pickles (magic, protocol, sys_info, object, keys) and its raw tail. */
export function mutateLegacy(r: Rng, input: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let p = 0;
  for (let i = 0; i < 5; i++) {
    const ops = tokenize(input.subarray(p));
    if (!ops) return mutateBytes(r, input);
    const n = ops.reduce((a, o) => a + o.length, 0);
    parts.push(input.subarray(p, p + n));
    p += n;
  }
  const tail = input.subarray(p);
  const i = r() < 0.6 ? 3 : int(r, 5);
  parts[i] = mutatePickle(r, parts[i]!);
  const t = r() < 0.3 ? mutateBytes(r, tail) : tail;
  return concat([...parts, t]);
}

/* ------------------------------------------------------------------------------------------ safetensors */

const WRONG: unknown[] = [null, 0, -1, 1.5, '', 'x', [], {}, [0], [-1, 4], [0, 2 ** 60], [4, 0], true, [[0, 4]], { a: 1 }, 2 ** 53 + 2];

export function mutateSafetensors(r: Rng, input: Uint8Array): Uint8Array {
  if (r() < 0.2) return mutateBytes(r, input);
  const n = Number(new DataView(input.buffer, input.byteOffset).getBigUint64(0, true));
  let header: Record<string, Record<string, unknown>>;
  try {
    header = JSON.parse(new TextDecoder().decode(input.subarray(8, 8 + n))) as typeof header;
  } catch {
    return mutateBytes(r, input);
  }
  const data = input.subarray(8 + n);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const name = names.length ? pick(r, names) : 'w';
  let e = header[name];
  if (typeof e !== 'object' || e === null || Array.isArray(e)) e = header[name] = {};
  switch (int(r, 9)) {
    case 0:
      e[pick(r, ['dtype', 'shape', 'data_offsets'])] = pick(r, WRONG);
      break;
    case 1:
      e.dtype = pick(r, ['F32', 'F16', 'BF16', 'F64', 'I64', 'U8', 'BOOL', 'F8_E4M3', 'constructor', '__proto__', 'toString']);
      break;
    case 2: {
      // offsets that overlap, shift, or run past the data
      const [b, end] = (Array.isArray(e.data_offsets) ? e.data_offsets : [0, 0]) as number[];
      const d = pick(r, [-4, -1, 1, 4, data.length]);
      e.data_offsets = r() < 0.5 ? [b! + d, end! + d] : [b!, end! + d];
      break;
    }
    case 3:
      e.shape = r() < 0.5 ? [...((e.shape as number[]) ?? []), pick(r, [0, 1, 2, 2 ** 31, 2 ** 53])] : [pick(r, [-1, 1.5, 2 ** 32])];
      break;
    case 4: // a control-character or prototype key
      header[pick(r, ['\x1b[2J\x1b[H', '__proto__', 'constructor', 'a\nb', '\u202etxt'])] = { ...e };
      break;
    case 5: // deep JSON in the metadata
      {
        const depth = 1 + int(r, 5000);
        header.__metadata__ = JSON.parse('['.repeat(depth) + ']'.repeat(depth)) as Record<string, unknown>;
      }
      break;
    case 6:
      header[name] = pick(r, WRONG) as Record<string, unknown>;
      break;
    case 7: {
      // a second tensor on the same bytes
      header[`${name}_copy`] = { ...e };
      break;
    }
    default:
      return safetensors(pick(r, WRONG), data);
  }
  let json: string;
  try {
    json = JSON.stringify(header);
  } catch {
    return mutateBytes(r, input);
  }
  return safetensors(new TextEncoder().encode(json), r() < 0.2 ? mutateBytes(r, data) : data);
}

/** One mutant of `seed`, by its format (recognised from its first bytes, as the importer does). */
export function mutate(r: Rng, seed: Uint8Array): Uint8Array {
  let out = seed;
  for (let i = 0, n = 1 + (r() < 0.3 ? int(r, 3) : 0); i < n; i++) {
    if (out[0] === 0x50 && out[1] === 0x4b) out = mutateZip(r, out);
    else if (out[0] === 0x80 && out[2] === 0x8a) out = mutateLegacy(r, out);
    else if (out.length >= 10 && out[8] === 0x7b) out = mutateSafetensors(r, out);
    else out = mutateBytes(r, out);
  }
  return out;
}
