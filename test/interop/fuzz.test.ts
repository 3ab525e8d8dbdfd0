/**
 * A short fuzzing run of the importer (test/fuzz/): 1,200 structure-aware mutants of the committed fixtures and
 * the hostile files, fixed seed, each in a child process under a time and memory watchdog. Every input must be
 * refused with a clean one-line InputError or load; any JavaScript error, hang, memory blow-up or crash fails with
 * the seed's file and the outcome. The long run is `npm run fuzz -- --seconds 3600`.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { fuzz } from '../fuzz/run.js';
import { Watchdog } from '../fuzz/watchdog.js';
import { backend } from '../helpers.js';

// The children never load TensorFlow: the run is the same on both backends, so CI's cpu pass skips it.
const once = { skip: backend.name === 'cpu' ? 'backend-independent, runs in the native pass' : false } as const;

test('fuzzing the importer: 1,200 mutants, all refused cleanly or loaded', once, async () => {
  const report = await fuzz({ seed: 20261208, inputs: 1200, timeoutMs: 30_000, maxRssBytes: 1536 * 2 ** 20 });
  const findings = report.findings.map((f) => `#${f.index} from ${f.seed}: ${f.result.outcome}: ${f.result.detail}`);
  assert.deepEqual(findings, []);
  assert.equal(report.inputs, 1200);
  // The mutants reach both ends: some still load, most are refused.
  assert.ok(report.counts.loaded > 0 && report.counts.refused > report.counts.loaded, JSON.stringify(report.counts));
});

test('the watchdog classifies a hang, a memory blow-up and a crash (it can fail)', async () => {
  // Inputs that make the child misbehave on request (hooks: child.ts), then a normal input on a fresh child.
  const dog = new Watchdog({ timeoutMs: 2000, maxRssBytes: 400 * 2 ** 20, hooks: true });
  try {
    const hook = (what: string): Uint8Array => new TextEncoder().encode(`IKL-FUZZ-TEST:${what}`);
    assert.equal((await dog.run(hook('hang'))).outcome, 'hang');
    assert.equal((await dog.run(hook('memory'))).outcome, 'memory');
    assert.equal((await dog.run(hook('crash'))).outcome, 'crash');
    assert.equal((await dog.run(hook('throw'))).outcome, 'js-error');
    assert.equal((await dog.run(new Uint8Array(3))).outcome, 'refused');
  } finally {
    dog.stop();
  }
});
