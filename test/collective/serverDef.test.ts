/**
 * The hand-written ServerDef encoder against the bytes TensorFlow's own protobuf classes write
 * (scripts/fixtures/server_def.py, from the *_pb2.py modules of the tensorflow-cpu wheel). Compared as decoded
 * wire-format trees (a generic decoder below, no knowledge of the schema but which fields are sub-messages) with
 * repeated fields as multisets: serializers may order map entries differently (python's upb writes them last first).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { encodeServerDef } from '../../src/collective/serverDef.js';

interface Case {
  workers: string[];
  rank: number;
  protocol: string;
  hex: string;
}
const cases = JSON.parse(readFileSync(new URL('../../../test/fixtures/collective/server-def.json', import.meta.url), 'utf8')) as Case[];

/** Sub-message fields by path (ServerDef.cluster.job.tasks entries, default_session_config.experimental). */
const MESSAGES = new Set(['1', '1.1', '1.1.2', '4', '4.16']);

type Node = string | number | Node[];

/** Decodes protobuf wire format into a canonical tree: [field, value] pairs sorted, sub-messages recursed. */
function decode(bytes: Uint8Array, path = ''): Node[] {
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let scale = 1;
    for (;;) {
      const b = bytes[i++]!;
      v += (b & 0x7f) * scale;
      scale *= 128;
      if (b < 0x80) return v;
    }
  };
  const fields: Node[] = [];
  while (i < bytes.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    const key = path === '' ? String(field) : `${path}.${field}`;
    if (wire === 0) fields.push([field, varint()]);
    else if (wire === 2) {
      const len = varint();
      const body = bytes.subarray(i, i + len);
      i += len;
      fields.push([field, MESSAGES.has(key) ? decode(body, key) : Buffer.from(body).toString('latin1')]);
    } else throw new Error(`unexpected wire type ${wire} at ${key}`);
  }
  return fields.sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
}

test('encodeServerDef: the same message as TensorFlow protobuf classes write', () => {
  assert.ok(cases.length >= 3);
  for (const c of cases) {
    const ours = encodeServerDef({ workers: c.workers, rank: c.rank }, c.protocol);
    const theirs = Uint8Array.from(Buffer.from(c.hex, 'hex'));
    assert.equal(ours.length, theirs.length, `${c.workers.length} workers, rank ${c.rank}: length`);
    assert.deepEqual(decode(ours), decode(theirs), `${c.workers.length} workers, rank ${c.rank}`);
  }
});

test('encodeServerDef: the rank and the addresses are what changes the bytes', () => {
  const a = encodeServerDef({ workers: ['h:1', 'h:2'], rank: 0 });
  const b = encodeServerDef({ workers: ['h:1', 'h:2'], rank: 1 });
  const c = encodeServerDef({ workers: ['h:1', 'h:3'], rank: 0 });
  assert.notDeepEqual(decode(a), decode(b));
  assert.notDeepEqual(decode(a), decode(c));
});
