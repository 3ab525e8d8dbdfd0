/**
 * Hand-made malicious weight files, one per class the fuzzing of the importer found (issue 23), each a few bytes to
 * a few MB. Every one must be refused with the one-line InputError, in bounded time and memory; they also seed the
 * fuzzer.
 */
import { f32, Pickle, safetensors, stateDictPickle, torchZip, zip } from './build.js';

export interface Hostile {
  name: string;
  /** What the file did to the importer before it was hardened. */
  was: string;
  /** The refusal must mention this. */
  expect: RegExp;
  bytes: () => Uint8Array;
}

const zipOf = (pkl: Uint8Array): Uint8Array => torchZip(pkl, {});
const okTensor = { name: 'w', key: '0', numel: 4, shape: [2, 2] };

export const HOSTILE: Hostile[] = [
  {
    name: 'invalid UTF-8 in a pickle string',
    was: 'exit 1 (TypeError from TextDecoder)',
    expect: /invalid UTF-8/,
    bytes: () =>
      zipOf(
        new Pickle()
          .proto()
          .str(Uint8Array.of(0x77, 0xff, 0xfe))
          .stop(),
      ),
  },
  {
    name: 'safetensors data_offsets null',
    was: 'exit 1 (TypeError)',
    expect: /data_offsets/,
    bytes: () => safetensors({ w: { dtype: 'F32', shape: [1], data_offsets: null } }, f32([1])),
  },
  {
    name: 'safetensors data_offsets a number',
    was: 'exit 1 (TypeError)',
    expect: /data_offsets/,
    bytes: () => safetensors({ w: { dtype: 'F32', shape: [1], data_offsets: 4 } }, f32([1])),
  },
  {
    name: 'safetensors entry null',
    was: 'exit 1 (TypeError)',
    expect: /expected an object/,
    bytes: () => safetensors({ w: null }, f32([1])),
  },
  {
    name: 'safetensors dtype "constructor"',
    was: 'a prototype property taken for a dtype',
    expect: /unsupported dtype/,
    bytes: () => safetensors({ w: { dtype: 'constructor', shape: [1], data_offsets: [0, 4] } }, f32([1])),
  },
  {
    name: 'safetensors header an array',
    was: 'exit 1',
    expect: /not a PyTorch \(\.pt\/\.pth\) or safetensors file/,
    bytes: () => safetensors([1, 2, 3]),
  },
  {
    name: 'deeply nested lists (200,000 levels)',
    was: 'exit 1 (Maximum call stack size exceeded)',
    expect: /nested deeper/,
    bytes: () => {
      const p = new Pickle().proto();
      for (let i = 0; i < 200_000; i++) p.emptyList();
      for (let i = 0; i < 199_999; i++) p.op(0x61); // APPEND: each list into the one below
      return zipOf(p.stop());
    },
  },
  {
    name: 'deeply nested MARKs',
    was: 'exit 1',
    expect: /MARKs nested deeper/,
    bytes: () => {
      const p = new Pickle().proto();
      for (let i = 0; i < 100_000; i++) p.mark();
      return zipOf(p.stop());
    },
  },
  {
    name: 'a list that contains itself, under state_dict',
    was: 'exit 1 (Maximum call stack size exceeded)',
    expect: /no state_dict found/,
    bytes: () => {
      const p = new Pickle().proto().emptyDict().str('state_dict').emptyList().op(0x32, 0x61); // DUP, APPEND
      return zipOf(p.op(0x73).stop()); // SETITEM
    },
  },
  {
    name: 'negative BINSTRING length (moves the read position backwards)',
    was: 'a loop re-reading itself: 1.4 GB after 20 s from 362 bytes',
    expect: /invalid length -5/,
    // -5 moves the position back onto the BINSTRING opcode itself: it ran again, forever, pushing '' each time.
    bytes: () => zipOf(new Pickle().proto().op(0x54).i32(-5).stop()),
  },
  {
    name: '"billion laughs": 64 levels each referencing the previous twice',
    was: 'expansion doubling at each level (808 bytes)',
    expect: /no state_dict found|holds no dict/,
    bytes: () => {
      const p = new Pickle().proto().emptyDict().str('state_dict').emptyList().put(0).op(0x30);
      for (let i = 1; i <= 64; i++)
        p.mark()
          .get(i - 1)
          .get(i - 1)
          .op(0x6c)
          .put(i)
          .op(0x30); // LIST of two references, POP
      return zipOf(p.get(64).op(0x73).stop()); // SETITEM
    },
  },
  {
    name: 'legacy file whose protocol number is a "billion laughs" list',
    was: 'String() of the list for the message: exponential (found by the fuzzer)',
    expect: /unsupported legacy protocol <list>/,
    bytes: () => {
      const magic = new Pickle().proto().op(0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19).stop();
      const p = new Pickle().proto().emptyList().put(0).op(0x30);
      for (let i = 1; i <= 64; i++)
        p.mark()
          .get(i - 1)
          .get(i - 1)
          .op(0x6c)
          .put(i)
          .op(0x30);
      const laughs = p.get(64).stop();
      const out = new Uint8Array(magic.length + laughs.length);
      out.set(magic);
      out.set(laughs, magic.length);
      return out;
    },
  },
  {
    name: 'LONG4 of 4 MB',
    was: 'quadratic decoding (1 MB > 20 s)',
    expect: /holds no dict of tensors/,
    bytes: () => {
      const n = 4 * 2 ** 20;
      return zipOf(new Pickle().proto().op(0x8b).i32(n).raw(new Uint8Array(n).fill(0x5a)).stop());
    },
  },
  {
    name: 'zip64 end record declaring 2^32 - 1 entries',
    was: 'the count trusted: hours',
    expect: /declares 4294967295 entries/,
    bytes: () => torchZip(stateDictPickle([okTensor]), { '0': f32([1, 2, 3, 4]) }, { zip64Entries: 2n ** 32n - 1n }),
  },
  {
    name: '60,000 central-directory entries pointing at one 64 KiB stored member',
    was: 'every entry copied: 4.8 GB from an 8 MB file',
    expect: /share bytes/,
    bytes: () => torchZip(stateDictPickle([okTensor]), { '0': new Uint8Array(65536) }, { aliases: { target: 2, count: 60_000 } }),
  },
  {
    name: '300 central-directory entries with 60 KB names of control characters',
    was: 'every name escaped for a message never thrown: 6 s for 16 MB (found by the fuzzer)',
    expect: /share bytes/,
    bytes: () => {
      const name = `archive/data/${'\x00'.repeat(60_000)}`;
      return zip(
        [
          { name: 'archive/data.pkl', data: stateDictPickle([okTensor]) },
          { name, data: f32([1, 2, 3, 4]) },
        ],
        { aliases: { target: 1, count: 300 } },
      );
    },
  },
  {
    name: 'deflated member declaring 64 bytes, inflating to 64 MB',
    was: 'passed the inflate budget',
    expect: /inflates to more than the 64 bytes/,
    bytes: () =>
      zip([
        { name: 'archive/data.pkl', data: stateDictPickle([{ ...okTensor, numel: 16, shape: [4, 4] }]) },
        { name: 'archive/data/0', data: new Uint8Array(64 * 2 ** 20), deflate: true, declaredSize: 64 },
      ]),
  },
  {
    name: 'deflated member declaring 4 GiB',
    was: 'a 4 GiB allocation',
    expect: /would inflate far beyond the file size/,
    bytes: () => zip([{ name: 'archive/data.pkl', data: stateDictPickle([okTensor]), deflate: true, declaredSize: 0xfffffffe }]),
  },
  {
    name: 'negative stride reaching before its storage',
    was: 'accepted: NaN weights without an error',
    expect: /negative stride/,
    bytes: () => torchZip(stateDictPickle([{ ...okTensor, stride: [-2, 1], offset: 2 }]), { '0': f32([1, 2, 3, 4]) }),
  },
  {
    name: 'stride whose middle elements reach past the storage',
    was: 'only the last element was checked',
    expect: /reaches past its storage/,
    bytes: () => torchZip(stateDictPickle([{ name: 'w', key: '0', numel: 4, shape: [2, 2], stride: [1, 4] }]), { '0': f32([1, 2, 3, 4]) }),
  },
  {
    name: 'a stride-0 view of one element as 2^28 elements',
    was: 'a 1 GiB allocation from a file of a few hundred bytes',
    expect: /bytes read from the file to \d+, more than/,
    bytes: () => torchZip(stateDictPickle([{ name: 'w', key: '0', numel: 1, shape: [2 ** 28], stride: [0] }]), { '0': f32([1]) }),
  },
  {
    name: 'overlapping safetensors data_offsets',
    was: 'accepted (the format forbids it)',
    expect: /overlap/,
    bytes: () => safetensors({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, f32([1, 2, 3])),
  },
  {
    name: 'ESC sequence in a safetensors key',
    was: 'printed raw: can clear the terminal or disguise the message',
    expect: /\\x1b\[2J/,
    bytes: () => safetensors({ '\x1b[2J\x1b[Hall good': { dtype: 'Q8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)),
  },
  {
    name: 'ESC sequence and BEL in a refused global',
    was: 'printed raw',
    expect: /refused global 'evil\\x1b\[31m\.x\\x07'/,
    bytes: () => zipOf(new Pickle().proto().global('evil\x1b[31m', 'x\x07').stop()),
  },
  {
    name: 'posix.system through REDUCE',
    was: 'refused already (kept as a regression)',
    expect: /refused global 'posix\.system'/,
    bytes: () => zipOf(new Pickle().proto().global('posix', 'system').str('touch /tmp/pwned').op(0x85).reduce().stop()),
  },
];
