/**
 * The oneDNN fault of some AVX-512 CPUs (issue 23), designed to be testable on a CPU that does not have it: the
 * probe's outcome is injected (IKL_ONEDNN_PROBE_SIMULATE=signal makes the probe child die of a real SIGFPE), and
 * the tests check that the decision follows, is cached, that a process whose probe died really runs with oneDNN off
 * and computes the same convolutions and gradients as the fast path, and that every zoo architecture survives its
 * forward and backward in a child process on this machine's default path.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { InputError } from '../../src/errors.js';
import { MODEL_ARCHS } from '../../src/models/index.js';
import { decideOneDnn, runProbe, type ProbeResult } from '../../src/onednn.js';
import { assertClose, heavy } from '../helpers.js';

const PKG = '@tensorflow/tfjs-node';
const here = (f: string): string => new URL(f, import.meta.url).pathname;
/** The test process's environment without what initBackend set in it (the children must decide for themselves). */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.TF_ENABLE_ONEDNN_OPTS;
  delete env.IKL_ONEDNN;
  delete env.IKL_ONEDNN_PROBE_SIMULATE;
  return { ...env, ...extra };
}

test("overrides: the user's TF_ENABLE_ONEDNN_OPTS wins, IKL_ONEDNN forces a path without probing, a bad value is refused", () => {
  const never = (): ProbeResult => assert.fail('no probe expected');
  assert.deepEqual(decideOneDnn({ pkg: PKG, env: { TF_ENABLE_ONEDNN_OPTS: '0', IKL_ONEDNN: 'on' }, probe: never }), {
    onednn: false,
    source: 'TF_ENABLE_ONEDNN_OPTS',
    reason: 'TF_ENABLE_ONEDNN_OPTS=0 set by the user',
  });
  assert.equal(decideOneDnn({ pkg: PKG, env: { IKL_ONEDNN: 'off' }, probe: never }).onednn, false);
  assert.equal(decideOneDnn({ pkg: PKG, env: { IKL_ONEDNN: 'on' }, probe: never }).onednn, true);
  assert.throws(() => decideOneDnn({ pkg: PKG, env: { IKL_ONEDNN: 'maybe' }, probe: never }), InputError);
});

test('the probe decides once per machine: a signal turns oneDNN off, a pass keeps it on, both cached; inconclusive is not', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ikl-onednn-'));
  try {
    for (const [outcome, onednn] of [
      ['signal', false],
      ['ok', true],
    ] as const) {
      const cache = join(dir, outcome);
      let calls = 0;
      const probe = (): ProbeResult => (calls++, { outcome, detail: outcome === 'signal' ? 'died of SIGFPE' : 'convolutions ran' });
      const first = decideOneDnn({ pkg: PKG, env: { IKL_CACHE: cache }, probe });
      assert.equal(first.onednn, onednn);
      assert.equal(first.source, 'probe');
      if (!onednn) assert.match(first.reason, /died of SIGFPE.*TF_ENABLE_ONEDNN_OPTS=0/);
      const second = decideOneDnn({ pkg: PKG, env: { IKL_CACHE: cache }, probe });
      assert.deepEqual([second.onednn, second.source, calls], [onednn, 'cache', 1]);
    }
    const cache = join(dir, 'inconclusive');
    let calls = 0;
    const probe = (): ProbeResult => (calls++, { outcome: 'inconclusive', detail: 'exit 1' });
    assert.equal(decideOneDnn({ pkg: PKG, env: { IKL_CACHE: cache }, probe }).onednn, true);
    decideOneDnn({ pkg: PKG, env: { IKL_CACHE: cache }, probe });
    assert.equal(calls, 2, 'an inconclusive probe is run again');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the real probe child: a clean run passes, a SIGFPE death is detected as a signal', heavy, () => {
  assert.deepEqual(runProbe(PKG, childEnv({})).outcome, 'ok');
  const died = runProbe(PKG, childEnv({ IKL_ONEDNN_PROBE_SIMULATE: 'signal' }));
  assert.deepEqual(died, { outcome: 'signal', detail: 'died of SIGFPE' });
});

test('a process whose probe dies runs with oneDNN off and computes the same convolutions and gradients as the fast path', heavy, () => {
  const dir = mkdtempSync(join(tmpdir(), 'ikl-onednn-'));
  try {
    const run = (extra: Record<string, string>) => {
      const r = spawnSync(process.execPath, [here('./onednn-child.js')], {
        env: childEnv({ IKL_CACHE: dir, ...extra }),
        encoding: 'utf8',
        timeout: 600_000,
        maxBuffer: 2 ** 28,
      });
      assert.equal(r.status, 0, `child failed (${r.signal ?? r.status}): ${r.stderr}`);
      return {
        ...(JSON.parse(r.stdout) as { env: string; decision: { onednn: boolean; source: string }; results: Record<string, number[]> }),
        stderr: r.stderr,
      };
    };
    const safe = run({ IKL_ONEDNN_PROBE_SIMULATE: 'signal' });
    assert.deepEqual([safe.env, safe.decision.onednn, safe.decision.source], ['0', false, 'probe']);
    assert.equal(readdirSync(dir).length, 1, 'the outcome is cached');
    const fast = run({ IKL_ONEDNN: 'on' });
    assert.deepEqual([fast.env, fast.decision.onednn], ['1', true]);
    // TensorFlow itself says whether oneDNN is on when it loads: the setting reached it.
    assert.match(fast.stderr, /oneDNN custom operations are on/);
    assert.doesNotMatch(safe.stderr, /oneDNN custom operations are on/);
    assert.deepEqual(Object.keys(safe.results), Object.keys(fast.results));
    for (const k of Object.keys(fast.results)) assertClose(safe.results[k]!, fast.results[k]!, 1e-4, k);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every zoo architecture runs forward and backward in a child process without dying of a signal', heavy, () => {
  // The machine's own path (probe and cache as a user's run): a fault here names the architecture.
  const r = spawnSync(process.execPath, [here('./zoo-child.js')], { env: childEnv({}), encoding: 'utf8', timeout: 1_800_000 });
  const started = [...r.stdout.matchAll(/^start (\S+)$/gm)].map((m) => m[1]);
  assert.equal(r.signal, null, `died of ${r.signal} in ${started.at(-1)}`);
  assert.equal(r.status, 0, `exit ${r.status} in ${started.at(-1)}: ${r.stderr.split('\n').slice(-5).join(' | ')}`);
  assert.deepEqual(
    [...r.stdout.matchAll(/^ok (\S+)$/gm)].map((m) => m[1]),
    [...MODEL_ARCHS],
  );
});

test('ikl-doctor reports the convolution path in use and why', heavy, async () => {
  const { diagnose } = await import('../../src/doctor.js');
  const d = await diagnose({ benchmarkSeconds: 0 });
  const line = d.findings.find((f) => f.section === 'onednn');
  assert.ok(line, 'an onednn finding');
  assert.match(
    line.text,
    /^convolutions: (oneDNN kernels \(fast path\)|TensorFlow's Eigen kernels \(safe path\)); (TF_ENABLE_ONEDNN_OPTS=|IKL_ONEDNN=|oneDNN's convolution probe)/,
  );
  assert.equal(line.status, d.backend?.oneDnn?.onednn === false ? 'warn' : 'ok');
});
