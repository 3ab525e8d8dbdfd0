/**
 * TensorBoard event files (src/tensorboard.ts) against TensorBoard's own reader: test/fixtures/tensorboard holds an
 * event file our writer made and expected.json, what tensorboard's EventAccumulator read from it
 * (scripts/fixtures/tensorboard_read.py). Our reader, CRCs checked, must see the same scalars in that file and in
 * a file written now from the same values.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { crc32c, readEvents, TensorBoardWriter, type EventRecord } from '../src/tensorboard.js';
import { fixtureScalars } from './tensorboard-scalars.js';
import { writeReportEvents } from '../src/eval/tensorboard.js';
import type { EvalReport } from '../src/eval/types.js';
import { configHash, parseConfig } from '../src/config/index.js';

const FIXTURE = new URL('../../test/fixtures/tensorboard/', import.meta.url).pathname;
const expected = JSON.parse(readFileSync(join(FIXTURE, 'expected.json'), 'utf8')) as { scalars: Record<string, Array<[number, number, number]>> };

function eventFile(dir: string): string {
  const files = readdirSync(dir).filter((f) => f.startsWith('events.out.tfevents.'));
  assert.equal(files.length, 1, `one event file in ${dir}`);
  return join(dir, files[0]!);
}

/** tag → [step, value, wall time] as TensorBoard lists them. */
function byTag(events: EventRecord[]): Record<string, Array<[number, number, number]>> {
  const out: Record<string, Array<[number, number, number]>> = {};
  for (const e of events) for (const s of e.scalars) (out[s.tag] ??= []).push([e.step, s.value, e.wallTime]);
  return out;
}

test('CRC-32C of the standard check string', () => {
  assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
});

test("the fixture's event file read by our reader gives what TensorBoard's EventAccumulator read", () => {
  const events = readEvents(readFileSync(eventFile(FIXTURE)));
  assert.equal(events[0]!.fileVersion, 'brain.Event:2');
  assert.deepEqual(byTag(events), expected.scalars);
});

test('a file written now from the same values reads back to the same scalars (float32 values)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tb-'));
  try {
    const w = new TensorBoardWriter(dir);
    for (const { step, wallTime, values } of fixtureScalars()) w.scalars(step, { ...values, skipped: NaN, absent: null }, wallTime);
    w.close();
    const events = readEvents(readFileSync(w.file));
    assert.deepEqual(byTag(events), expected.scalars, 'non-finite and null values are left out');
    // The values are the float32 roundings of what was logged.
    const first = fixtureScalars()[0]!;
    assert.equal(byTag(events)['train/lr']![0]![1], Math.fround(first.values['train/lr']!));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a damaged record is refused by its CRC; a truncated last record is dropped', () => {
  const bytes = readFileSync(eventFile(FIXTURE));
  const damaged = Uint8Array.from(bytes);
  damaged[bytes.length - 10]! ^= 0x40;
  assert.throws(() => readEvents(damaged), /bad data CRC/);
  const all = readEvents(bytes);
  assert.equal(readEvents(bytes.subarray(0, bytes.length - 3)).length, all.length - 1);
});

test('ikl-eval --tensorboard: clean accuracy at step 0, the accuracy after each stage at steps 1..S', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tb-eval-'));
  try {
    const report = {
      clean_acc: 0.75,
      robust_acc: 0.125,
      stages: [
        { name: 'apgd-ce', robust_acc: 0.2, robust_correct: 8, time_s: 1 },
        { name: 'apgd-t', robust_acc: 0.125, robust_correct: 5, time_s: 1 },
      ],
      per_class_summary: { worst_class: 0, worst_robust_acc: 0, worst_clean_acc: 0.5, best_class: 1, best_robust_acc: 0.5, spread: 0.5 },
    } as unknown as EvalReport;
    const file = writeReportEvents(report, dir);
    const tags = byTag(readEvents(readFileSync(file)));
    assert.deepEqual(
      tags['eval/accuracy']!.map(([step, v]) => [step, v]),
      [
        [0, 0.75],
        [1, Math.fround(0.2)],
        [2, 0.125],
      ],
    );
    assert.deepEqual(
      tags['eval/after/apgd-t']!.map(([step, v]) => [step, v]),
      [[2, 0.125]],
    );
    assert.deepEqual(
      tags['eval/class_spread']!.map(([step, v]) => [step, v]),
      [[2, 0.5]],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('log.tensorboard is presentation: it does not change the config hash, and configs without it keep theirs', () => {
  const base = parseConfig({ data: { dataset: 'synthetic' } }, 'a');
  const on = parseConfig({ data: { dataset: 'synthetic' }, log: { tensorboard: true } }, 'b');
  assert.equal(configHash(on), configHash(base));
  // The hash of a config as it was before the log section existed.
  const { log: _log, ...before } = base as unknown as Record<string, unknown>;
  assert.equal(configHash(before as never), configHash(base));
  assert.throws(() => parseConfig({ log: { tensorboard: 3 } }, 'c.yaml'), /log\.tensorboard/);
});
