/**
 * File errors name the file the user gave and exit 2 (issue 11): a `--state` in a missing folder, a folder the
 * user may not write (EACCES, a real one: the child runs as `nobody`), a full disk (ENOSPC, a real one from
 * /dev/full, and an injected one for checkpoint writes). The previous file is never lost.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { mock, test } from 'node:test';
import { readCheckpoint, writeCheckpoint } from '../../src/checkpoint/index.js';
import { InputError } from '../../src/errors.js';
import { writeFileAtomic } from '../../src/files.js';
import { createModel } from '../../src/models/index.js';
import { tempDir } from './fixture.js';

const root = new URL('../../..', import.meta.url).pathname;
const bin = join(root, 'bin', 'ikl-eval.js');

function cli(args: string[], opts: { uid?: number } = {}): { status: number | null; stdout: string; stderr: string; ms: number } {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, IKL_BACKEND: 'cpu' }, timeout: 60_000, ...opts });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 };
}

test('--state in a missing folder: exit 2 before any work, naming the file as given', () => {
  const r = cli(['--checkpoint', 'whatever', '--attack', 'pgd', '--state', 'no-such-folder/aa.state.json']);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr, 'ikl-eval: --state no-such-folder/aa.state.json: the folder no-such-folder does not exist (create it first)\n');
});

test(
  '--state in a folder the user may not write (EACCES): exit 2 naming the file',
  { skip: process.getuid?.() !== 0 ? 'needs root to run the child as nobody' : false },
  () => {
    const dir = tempDir();
    chmodSync(dir, 0o755); // owned by root: nobody may read but not write
    const file = join(dir, 'aa.state.json');
    const r = cli(['--checkpoint', 'whatever', '--attack', 'pgd', '--state', file], { uid: 65534 });
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr, `ikl-eval: --state ${file}: cannot write in ${dir} (permission denied, EACCES)\n`);
  },
);

test('a full disk (ENOSPC from /dev/full) while saving: InputError naming the file; the previous version intact', async () => {
  const dir = tempDir();
  const file = join(dir, 'aa.state.json');
  writeFileSync(file, 'previous\n');
  // The temporary file of this process, pointed at /dev/full: every write to it fails with a real ENOSPC.
  symlinkSync('/dev/full', `${file}.tmp-${process.pid}`);
  await assert.rejects(
    writeFileAtomic(file, 'x'.repeat(1 << 16)),
    (e: unknown) =>
      e instanceof InputError && e.message === `${file}: cannot write (no space left on the device, ENOSPC); the previous version, if any, is intact`,
  );
  assert.equal(readFileSync(file, 'utf8'), 'previous\n');
  assert.deepEqual(readdirSync(dir), ['aa.state.json'], 'the temporary file is removed');
});

test('a checkpoint write failing with ENOSPC (injected) names the checkpoint; the previous one is intact and readable', async () => {
  const dir = tempDir();
  const ckpt = join(dir, 'last');
  const model = createModel({ arch: 'small-cnn', numClasses: 10, seed: 0 });
  const meta = { arch: 'small-cnn', numClasses: 10, dataset: 'synthetic', epoch: 1, step: 1 };
  try {
    await writeCheckpoint(ckpt, { model, meta });
    const realOpen = fsp.open;
    const m = mock.method(fsp, 'open', async (...args: Parameters<typeof fsp.open>) => {
      if (String(args[0]).endsWith('tensors.bin'))
        throw Object.assign(new Error(`ENOSPC: no space left on device, open '${String(args[0])}'`), {
          code: 'ENOSPC',
          syscall: 'open',
          path: String(args[0]),
        });
      return realOpen(...args);
    });
    syncBuiltinESMExports();
    try {
      await assert.rejects(
        writeCheckpoint(ckpt, { model, meta: { ...meta, epoch: 2 } }),
        (e: unknown) =>
          e instanceof InputError &&
          e.message === `${ckpt}: cannot write the checkpoint (no space left on the device, ENOSPC); the previous checkpoint is intact`,
      );
    } finally {
      m.mock.restore();
      syncBuiltinESMExports();
    }
    assert.equal(m.mock.calls.length > 0, true, 'the injection was reached');
    const back = await readCheckpoint(ckpt);
    assert.equal(back.meta.epoch, 1);
    back.model.dispose();
    assert.ok(!readdirSync(dir).some((f) => f.includes('.tmp-')), `no temporary directory left: ${readdirSync(dir)}`);
  } finally {
    model.dispose();
  }
  assert.ok(existsSync(ckpt));
});

test('a file error no caller named (e.g. ENOSPC on metrics.jsonl): exit 2, one line naming the file, not its temporary name', () => {
  const common = new URL('../../src/cli/common.js', import.meta.url).href;
  const script = `const { runMain } = await import(${JSON.stringify(common)});
    await runMain('ikl-train', async () => { throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write', path: 'runs/r/metrics.jsonl.tmp-4242' }); });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr, 'ikl-train: runs/r/metrics.jsonl: cannot write (no space left on the device, ENOSPC)\n');
});
