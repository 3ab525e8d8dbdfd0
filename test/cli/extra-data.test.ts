/** ikl-train with generated data in npz parts (data.extra.files), end to end through the CLI. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { fileURLToPath } from 'node:url';
import { heavy } from '../helpers.js';
import { writeNpz } from '../../src/data/npz-write.js';
import { makeSynthetic } from '../../src/data/synthetic.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'ikl-train.js');
const FIX = join(ROOT, 'test', 'fixtures', 'npz');
const tmp = mkdtempSync(join(tmpdir(), 'ikl-cli-extra-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: tmp, encoding: 'utf8', env: { ...process.env, IKL_BACKEND: 'tensorflow' }, timeout: 240_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Two parts of "generated" images: the synthetic dataset of another seed. */
function parts(): string[] {
  const gen = makeSynthetic({ nTrain: 300, nTest: 0, seed: 7 }).train;
  const SIZE = 32 * 32 * 3;
  return [
    [0, 180],
    [180, 300],
  ].map(([a, b], p) => {
    const file = join(tmp, `gen_part${p + 1}.npz`);
    writeNpz(file, {
      n: b! - a!,
      fill: (from, count, images, labels) => {
        images.set(gen.images.subarray((a! + from) * SIZE, (a! + from + count) * SIZE));
        for (let k = 0; k < count; k++) labels[k] = BigInt(gen.labels[a! + from + k]!);
      },
    });
    return file;
  });
}

const config = (files: string[]) => `
run: { name: extra, outDir: ${tmp}, seed: 1 }
data:
  dataset: synthetic
  synthetic: { nTrain: 600, nTest: 50 }
  valSize: 100
  valSplit: first
  batchSize: 32
  workers: 1
  extra: { files: [${files.map((f) => JSON.stringify(f)).join(', ')}], ratio: 0.5 }
model: { arch: small-cnn }
attack: { steps: 1 }
schedule: { epochs: 1 }
eval: { nExamples: 32, pgdSteps: 1 }
`;

interface LogLine {
  msg: string;
  [k: string]: unknown;
}

test('ikl-train on two npz parts: the reference sampler epoch, the extra images streamed, a checkpoint', heavy, () => {
  const cfg = join(tmp, 'extra.yaml');
  writeFileSync(cfg, config(parts()));
  const runDir = join(tmp, 'run');
  const r = cli(['--config', cfg, '--run-dir', runDir, '--log-format', 'json']);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
  const opened = lines.find((l) => l.msg.startsWith('extra data opened'));
  assert.equal(opened?.images, 300);
  const start = lines.find((l) => l.msg === 'training starts');
  assert.equal(start?.train, 500, '600 minus the first 100 as validation');
  assert.equal(start?.batchesPerEpoch, Math.ceil(600 / 32), 'ceil(N/B) with N before the validation split');
  const metrics = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n');
  assert.equal(metrics.length, 1);
  const m = JSON.parse(metrics[0]!) as { lossTotal: number; step: number };
  assert.equal(m.step, 19);
  assert.ok(Number.isFinite(m.lossTotal));
});

test('ikl-train refuses a compressed npz part: exit 2, one line naming the file and member and the fix', () => {
  const cfg = join(tmp, 'bad.yaml');
  writeFileSync(cfg, config([join(FIX, 'part1.npz'), join(FIX, 'compressed.npz')]));
  const r = cli(['--config', cfg, '--run-dir', join(tmp, 'bad')]);
  assert.equal(r.status, 2, r.stderr);
  const errLines = r.stderr.split('\n').filter((l) => l.startsWith('ikl-train:'));
  assert.equal(errLines.length, 1, r.stderr);
  assert.match(errLines[0]!, /compressed\.npz: member (image|label)\.npy: compressed .*np\.savez, not np\.savez_compressed/);
});
