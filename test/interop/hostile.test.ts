/**
 * The hand-made malicious weight files of issue 23 (test/fuzz/hostile.ts), each through the importer in a child
 * process under the fuzzer's time and memory watchdog: every one is refused with the one-line InputError naming
 * what is wrong; none hangs, blows up memory or ends in a JavaScript error. Plus the pieces each class relied on,
 * tested alone: the pickle VM's opcode handlers and budgets, linear LONG decoding, the iterative tensor walk.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { InputError, printable } from '../../src/errors.js';
import { mapTensors } from '../../src/interop/formats.js';
import { parseStateDict } from '../../src/interop/index.js';
import { Budget, LIMITS } from '../../src/interop/limits.js';
import { decodeLong, OPCODES, PickleError, PickleVM, unpickle } from '../../src/interop/pickle.js';
import { f32, safetensors, stateDictPickle, tinySafetensors, tinyZip, torchZip } from '../fuzz/build.js';
import { HOSTILE } from '../fuzz/hostile.js';
import { Watchdog } from '../fuzz/watchdog.js';

test('every hostile file is refused cleanly: InputError, one line, no control characters, bounded time and memory', async () => {
  // Generous limits: under load a clean refusal takes milliseconds; the classes took minutes or gigabytes.
  const dog = new Watchdog({ timeoutMs: 30_000, maxRssBytes: 1536 * 2 ** 20 });
  try {
    for (const h of HOSTILE) {
      const r = await dog.run(h.bytes());
      assert.equal(r.outcome, 'refused', `${h.name} (was: ${h.was}): ${r.outcome}: ${r.detail}`);
      assert.match(r.detail, h.expect, h.name);
      assert.equal(printable(r.detail), r.detail, `${h.name}: control characters in the message`);
    }
  } finally {
    dog.stop();
  }
});

test('the same files without the malice load, with the values written (the checks refuse only what is wrong)', () => {
  const read = (buf: Uint8Array): Record<string, number[]> => Object.fromEntries([...parseStateDict(buf, 'x').tensors].map(([k, t]) => [k, [...t.read()]]));
  const want = { w: [1, 2, 3, 4, 5, 6], b: [7, 8, 9] };
  assert.deepEqual(read(tinyZip()), want);
  assert.deepEqual(read(tinySafetensors()), want);
  // A transposed view (stride [1, 2]) and a view at an offset read what PyTorch's .contiguous() gives.
  const view = torchZip(
    stateDictPickle([
      { name: 't', key: '0', numel: 6, shape: [3, 2], stride: [1, 3] },
      { name: 'o', key: '0', numel: 6, shape: [2], stride: [2], offset: 1 },
    ]),
    { '0': f32([1, 2, 3, 4, 5, 6]) },
  );
  assert.deepEqual(read(view), { t: [1, 4, 2, 5, 3, 6], o: [2, 4] });
  // Adjacent (not overlapping) safetensors ranges, in any order in the header.
  const adj = safetensors({ b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] }, a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32([1, 2]));
  assert.deepEqual(read(adj), { b: [2], a: [1] });
});

test('a refusal of a file names it and escapes its text', () => {
  const bad = safetensors({ 'k\x1b]0;pwned\x07': { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, f32([1]));
  assert.throws(
    () => parseStateDict(bad, 'weights.safetensors'),
    (e: unknown) => e instanceof InputError && e.message.startsWith('weights.safetensors: ') && e.message.includes("'k\\x1b]0;pwned\\x07'"),
  );
  assert.equal(printable('a\nb\u202ec\x9b'), 'a\\x0ab\\u{202e}c\\x9b');
  assert.equal(printable('x'.repeat(10), 4), 'xxxx...');
});

test('decodeLong is two-complement little-endian, as Python reads LONG1/LONG4', () => {
  // Independent formulation: sum of bytes times powers of 256, minus 256^n if the top bit is set.
  const ref = (b: number[]): bigint => {
    let v = 0n;
    b.forEach((x, i) => (v += BigInt(x) * 256n ** BigInt(i)));
    return b.length && b.at(-1)! & 0x80 ? v - 256n ** BigInt(b.length) : v;
  };
  for (const b of [
    [],
    [0xff],
    [0x7f],
    [0x80],
    [0x00, 0x01],
    [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
    [0x6a, 0xa8, 0x50, 0x19, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20],
  ]) {
    const got = decodeLong(Uint8Array.from(b));
    assert.equal(BigInt(got), ref(b), `bytes ${b}`);
    assert.equal(typeof got, ref(b) >= BigInt(Number.MIN_SAFE_INTEGER) && ref(b) <= BigInt(Number.MAX_SAFE_INTEGER) ? 'number' : 'bigint');
  }
});

test('the opcode handlers alone: lengths, stack and budgets are checked where input is read and values are made', () => {
  const vm = (bytes: number[]): PickleVM => new PickleVM(Uint8Array.from(bytes), 0, new Budget(1000));
  const run = (name: string, v: PickleVM): void => [...OPCODES.values()].find((h) => h.name === name)!.run(v);
  // BINSTRING with a negative length: refused before the position moves.
  const a = vm([0xfa, 0xff, 0xff, 0xff]);
  assert.throws(() => run('BINSTRING', a), /invalid length -6/);
  // SHORT_BINUNICODE with bytes that are not UTF-8.
  assert.throws(() => run('SHORT_BINUNICODE', vm([2, 0xc3, 0x28])), PickleError);
  // TUPLE2 on a stack of one: underflow, not undefined in a tuple.
  const b = vm([]);
  b.push(1);
  assert.throws(() => run('TUPLE2', b), /stack underflow/);
  // APPENDS of many items: no spread over the JS stack, and every item counted.
  const c = vm([]);
  c.push([]);
  c.mark();
  for (let i = 0; i < 300_000; i++) c.stack.push(i);
  run('APPENDS', c);
  assert.equal((c.stack[0] as unknown[]).length, 300_000);
  // MARK nesting limit.
  const d = vm([]);
  for (let i = 0; i < LIMITS.depth; i++) run('MARK', d);
  assert.throws(() => run('MARK', d), /nested deeper/);
  // Unknown opcodes are refused by name before anything runs (0x69 INST, 0x81 NEWOBJ, 0x92 NEWOBJ_EX).
  for (const op of [0x69, 0x81, 0x92, 0x6f]) assert.throws(() => unpickle(Uint8Array.of(0x80, 2, op)), /refused opcode/);
});

test('the tensor walk is iterative and visits a shared object once (cycles and memo-shared levels)', () => {
  const budget = new Budget(0);
  let level: unknown[] = [];
  for (let i = 0; i < 150; i++) level = [level, level]; // 2^150 paths, 151 objects
  const out = mapTensors(level, () => 0, budget) as unknown[];
  assert.equal(out[0], out[1], 'sharing kept');
  const self: unknown[] = [];
  self.push(self);
  const o = mapTensors(self, () => 0, budget) as unknown[];
  assert.equal(o[0], o, 'cycle kept');
  let deep: unknown[] = [];
  for (let i = 0; i < 100_000; i++) deep = [deep];
  assert.throws(() => mapTensors(deep, () => 0, budget), /nested deeper than/);
});

test('a pickle building more values than LIMITS.pickleNodes is refused, however few bytes each takes', () => {
  // EMPTY_LIST then one DUP (1 byte, 1 value) per value: the budget, not the file size, stops it.
  const n = LIMITS.pickleNodes + 10;
  const bytes = new Uint8Array(n + 4);
  bytes.set([0x80, 2, 0x5d]);
  bytes.fill(0x32, 3, n + 3);
  bytes[n + 3] = 0x2e;
  assert.throws(() => unpickle(bytes), /more than \d+ values built/);
});
