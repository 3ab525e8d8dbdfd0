/** `ikl-export` and `ikl-eval --checkpoint FILE` as a user runs them, in child processes. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { EvalReport } from '../../src/eval/types.js';
import { makeCheckpoint, tempDir } from '../eval/fixture.js';
import { heavy } from '../helpers.js';
import { fixture } from './fixtures.js';

const root = new URL('../../..', import.meta.url).pathname;
const env = { ...process.env, IKL_BACKEND: process.env.IKL_BACKEND ?? 'auto' };

function run(bin: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(root, 'bin', bin), ...args], { encoding: 'utf8', env, timeout: 180_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// TensorFlow's native library may log its own start-up lines on stderr; ours is exactly one line.
const oneLine = (s: string, name: string): boolean => s.split('\n').filter((l) => l.startsWith(`${name}:`)).length === 1;

test('ikl-export → .pt and .safetensors; ikl-eval on the .pt reports the same accuracy as on the checkpoint, with the file sha256', heavy, async () => {
  const dir = tempDir('ikl-interop-cli-');
  // 120 steps: clearly above chance in inference mode (40 left it at the threshold below, 11-13 of 64).
  const ckpt = await makeCheckpoint(dir, { steps: 120 });
  const pt = join(dir, 'model.pt');
  const e1 = run('ikl-export.js', [ckpt, '--to', pt]);
  assert.equal(e1.status, 0, e1.stderr);
  const out = JSON.parse(e1.stdout) as { sha256: string; arch: string; format: string };
  assert.equal(out.arch, 'small-cnn');
  assert.equal(out.format, 'torch-zip');
  const digest = createHash('sha256').update(readFileSync(pt)).digest('hex');
  assert.equal(out.sha256, digest);
  const e2 = run('ikl-export.js', [pt, '--to', join(dir, 'model.safetensors')]);
  assert.equal(e2.status, 0, e2.stderr);

  const flags = ['--dataset', 'synthetic', '--attack', 'fgsm', '--n-examples', '64', '--batch-size', '32'];
  const ours = run('ikl-eval.js', ['--checkpoint', ckpt, ...flags]);
  assert.equal(ours.status, 0, ours.stderr);
  const a = JSON.parse(ours.stdout) as EvalReport;
  // Architecture recognised from the keys (no --arch).
  const theirs = run('ikl-eval.js', ['--checkpoint', pt, ...flags]);
  assert.equal(theirs.status, 0, theirs.stderr);
  const b = JSON.parse(theirs.stdout) as EvalReport;
  assert.equal(b.arch, 'small-cnn');
  assert.equal(b.checkpoint_sha256, digest);
  assert.deepEqual(b.weights_source, { format: 'torch-zip', container: '', prefix: '' });
  assert.equal(b.clean_correct, a.clean_correct);
  assert.equal(b.robust_correct, a.robust_correct);
  assert.ok(a.clean_correct > 64 / 10 + 5, `a trained model, not chance (${a.clean_correct}/64)`);
  const st = run('ikl-eval.js', ['--checkpoint', join(dir, 'model.safetensors'), '--arch', 'small-cnn', ...flags]);
  assert.equal(st.status, 0, st.stderr);
  assert.equal((JSON.parse(st.stdout) as EvalReport).robust_correct, a.robust_correct);
});

test('bad weight files and flags: exit 2, one line naming the file, nothing on stdout, nothing written', () => {
  const dir = tempDir('ikl-interop-cli-');
  const pt = readFileSync(fixture('v_bare_strided.pt'));
  writeFileSync(join(dir, 'trunc.pt'), pt.subarray(0, 30_000));
  writeFileSync(join(dir, 'garbage.pt'), Buffer.from('PK\x03\x04 definitely not a zip'));
  const evalCases: Array<[string[], RegExp]> = [
    [['--checkpoint', join(dir, 'trunc.pt')], /trunc\.pt: not a readable zip archive/],
    [['--checkpoint', join(dir, 'garbage.pt')], /garbage\.pt: not a readable zip archive/],
    [['--checkpoint', fixture('evil_os_system.pt')], /evil_os_system\.pt: pickle: refused global '(posix|os)\.system'/],
    [
      ['--checkpoint', fixture('resnet18_w4.pt')],
      /resnet18_w4\.pt: does not match resnet-18 with 10 classes: .*wrongly shaped \(conv1\.weight \[4,3,3,3\] \(expected \[64,3,3,3\]\)/,
    ],
    [
      ['--checkpoint', fixture('resnet18_w4.pt'), '--arch', 'wrn-34-10'],
      /does not match wrn-34-10 with 10 classes: \d+ missing \(block1\.layer\.0\.bn1\.weight.*\d+ unexpected \(layer1\.0\.conv1\.weight.*\d+ wrongly shaped \(conv1\.weight \[4,3,3,3\] \(expected \[16,3,3,3\]\)/,
    ],
    // Every WRN depth 6n+4 is in the zoo (a wrn-10-1 file loads as one); another depth is no architecture.
    [
      ['--checkpoint', fixture('trades_wrn_10_1.pt'), '--arch', 'wrn-11-1'],
      /--arch: unknown architecture 'wrn-11-1', expected one of .*wrn-<depth>-<widen>\[-swish\]/,
    ],
  ];
  for (const [args, re] of evalCases) {
    const r = run('ikl-eval.js', [...args, '--dataset', 'synthetic', '--attack', 'fgsm', '--n-examples', '8']);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    const line = r.stderr.trim().split('\n').at(-1)!;
    assert.match(line, /^ikl-eval: /);
    assert.ok(oneLine(r.stderr, 'ikl-eval'), r.stderr);
    assert.match(line, re);
  }
  const out = join(dir, 'out.safetensors');
  const exportCases: Array<[string[], RegExp]> = [
    [[join(dir, 'trunc.pt'), '--to', out], /trunc\.pt: not a readable zip archive/],
    [[fixture('v_bare.safetensors'), '--to', join(dir, 'out.onnx')], /--to .*out\.onnx: unknown extension '\.onnx'/],
    [[fixture('v_bare.safetensors')], /--to: an output file/],
    [[join(dir, 'nowhere')], /--to: an output file|nowhere/],
    [[join(dir, 'nowhere'), '--to', out], /nowhere/],
  ];
  for (const [args, re] of exportCases) {
    const r = run('ikl-export.js', args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.ok(oneLine(r.stderr, 'ikl-export'), r.stderr);
    assert.match(r.stderr, re);
  }
  assert.equal(existsSync(out), false);
});
