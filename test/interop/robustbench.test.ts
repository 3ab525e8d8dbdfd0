/**
 * RobustBench by name: the table, name resolution, files written by RobustBench's own modules
 * (scripts/fixtures/robustbench_modules.py) giving PyTorch's logits, the recorded checksum, and the Google Drive
 * download (confirmation page, cookie token, resume with Range, offline message) against a local HTTP server.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../../src/errors.js';
import { mappingFor } from '../../src/interop/index.js';
import {
  ROBUSTBENCH_LACKING,
  ROBUSTBENCH_MODELS,
  compareWithRobustBench,
  ensureRobustBenchFile,
  findRobustBenchEntry,
  loadRobustBenchModel,
  parseRobustBenchEps,
  robustBenchPaths,
  type RobustBenchEntry,
} from '../../src/interop/robustbench.js';
import { forward, parseArch, parseWrnArch } from '../../src/models/index.js';
import { freshDir } from '../data/fixtures.js';
import { noLeak } from '../helpers.js';
import { fixtureInputs, relDiff } from './fixtures.js';

const RB = new URL('../../../test/fixtures/robustbench/', import.meta.url).pathname;
interface RbCase {
  file: string;
  entry: RobustBenchEntry;
  logits: number[][];
}
interface ReducedCase {
  file: string;
  family: 'dm-preact-resnet';
  width: number;
  numClasses: number;
  normalization: { mean: number[]; std: number[] };
  logits: number[][];
}
const FIXTURE = JSON.parse(readFileSync(join(RB, 'cases.json'), 'utf8')) as { cases: RbCase[]; reduced: ReducedCase[] };
const CASES = FIXTURE.cases;

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const rejectsInput = async (p: Promise<unknown>, re: RegExp): Promise<void> => {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof InputError, String(e));
    assert.match(e.message, re);
    return true;
  });
};

async function logitsOf(entry: RobustBenchEntry, file: string, env: NodeJS.ProcessEnv): Promise<Float32Array> {
  const m = await loadRobustBenchModel(entry, file, env);
  try {
    return await noLeak(() => {
      const x = fixtureInputs();
      const y = forward(m.model, x, { training: false });
      const v = y.dataSync() as Float32Array;
      tf.dispose([x, y]);
      return v;
    });
  } finally {
    m.model.dispose();
  }
}

test('the table: every entry is an architecture of the zoo with its mapping, class count, statistics and a Drive id', () => {
  assert.ok(ROBUSTBENCH_MODELS.length >= 100, `${ROBUSTBENCH_MODELS.length} entries`);
  assert.equal(ROBUSTBENCH_MODELS.length + ROBUSTBENCH_LACKING.length, 135); // every CIFAR Linf/L2 entry of the commit read
  const seen = new Set<string>();
  for (const e of ROBUSTBENCH_MODELS) {
    const where = `${e.dataset}/${e.threat}/${e.name}`;
    assert.ok(!seen.has(where), `duplicate ${where}`);
    seen.add(where);
    assert.equal(parseArch(e.arch), e.arch, where);
    assert.equal(e.numClasses, e.dataset === 'cifar100' ? 100 : 10, where);
    const wrn = parseWrnArch(e.arch);
    assert.equal(wrn?.family ?? e.family, e.family, where);
    assert.equal(mappingFor(e.arch), mappingFor(e.family), where);
    // The Swish WRN always normalises inside; a TRADES WRN only when its module does (mu/sigma or 2x - 1).
    if (e.family === 'dm-wrn' || e.family === 'dm-preact-resnet') assert.ok(e.normalization !== null, where);
    if (e.normalization) for (const v of [e.normalization.mean, e.normalization.std]) assert.equal(v.length, 3, where);
    assert.match(e.gdriveId, /^[\w-]{20,}$/, where);
    assert.ok(e.info?.clean_acc !== undefined && e.info.autoattack_acc !== undefined, where);
  }
  for (const l of ROBUSTBENCH_LACKING) assert.ok(!seen.has(`${l.dataset}/${l.threat}/${l.name}`), `${l.name} both loads and lacks`);
  // The paper's own entries, as RobustBench lists them.
  const cui = findRobustBenchEntry('robustbench:Cui2023Decoupled_WRN-34-10', { dataset: 'cifar10' });
  assert.deepEqual([cui.arch, cui.options.sub_block1, cui.normalization], ['wrn-34-10', false, null]);
  const cui100 = findRobustBenchEntry('robustbench:Cui2023Decoupled_WRN-28-10', { dataset: 'cifar100' });
  assert.equal(cui100.arch, 'wrn-28-10-swish');
  assert.deepEqual(cui100.normalization?.mean, [0.5071, 0.4865, 0.4409]);
  assert.ok(ROBUSTBENCH_MODELS.some((e) => e.arch === 'wrn-70-16-swish') && ROBUSTBENCH_MODELS.some((e) => e.arch === 'wrn-106-16-swish'));
});

test('names resolve by dataset and threat; ambiguous, lacking and unknown names say why', () => {
  assert.throws(() => findRobustBenchEntry('robustbench:Cui2023Decoupled_WRN-28-10'), /several leaderboards \(cifar10\/Linf, cifar100\/Linf\)/);
  assert.equal(findRobustBenchEntry('robustbench:cifar100/Linf/Cui2023Decoupled_WRN-28-10').dataset, 'cifar100');
  // A name on both the Linf and the L2 board: Linf unless the norm says L2, as RobustBench's load_model.
  assert.equal(findRobustBenchEntry('robustbench:Wang2023Better_WRN-70-16', { dataset: 'cifar10' }).threat, 'Linf');
  const l2 = findRobustBenchEntry('robustbench:Wang2023Better_WRN-70-16', { dataset: 'cifar10', threat: 'L2' });
  assert.deepEqual([l2.threat, l2.info?.eps], ['L2', '0.5']);
  assert.throws(
    () => findRobustBenchEntry('robustbench:Debenedetti2022Light_XCiT-S12', { dataset: 'cifar10' }),
    (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /xcit.*architecture the zoo does not build/);
      return true;
    },
  );
  assert.throws(() => findRobustBenchEntry('robustbench:Cui2023Decoupled_WRN-34-10_autoaug', { dataset: 'cifar10' }), /exists for cifar100\/Linf/);
  assert.throws(() => findRobustBenchEntry('robustbench:Cui2023Decoupld'), /not a RobustBench .* \(similar: Cui2023Decoupled/);
});

describe('files written by RobustBench’s own modules', () => {
  for (const c of CASES) {
    it(`${c.file}: ${c.entry.robustbench} gives PyTorch's logits to 1e-4 of the logit scale`, async () => {
      const env = { IKL_CACHE: freshDir('rb-cache') };
      const logits = await logitsOf(c.entry, join(RB, c.file), env);
      const rel = relDiff(logits, c.logits.flat());
      assert.ok(rel < 1e-4, `max |ours - torch| / max |torch| = ${rel}`);
      console.log(`# ${c.file}: max rel logit diff ${rel.toExponential(2)}`);
    });
  }

  for (const c of FIXTURE.reduced) {
    it(`${c.file}: RobustBench's DMPreActResNet (widths / 16) gives PyTorch's logits through the same builder and mapping`, async () => {
      const { REDUCED_BUILDERS, setNormalization } = await import('../../src/models/archs.js');
      const { importIntoModel, readStateDictFile, recogniseArch } = await import('../../src/interop/index.js');
      const flat = await readStateDictFile(join(RB, c.file));
      assert.deepEqual(recogniseArch(new Map([...flat.tensors].map(([k, t]) => [k, t.shape]))), { arch: 'dm-preact-resnet-18', numClasses: c.numClasses });
      const model = REDUCED_BUILDERS[c.family](c.width, c.numClasses);
      try {
        setNormalization(model, c.normalization.mean, c.normalization.std);
        importIntoModel(model, mappingFor('dm-preact-resnet-18'), flat, c.file, c.family);
        await noLeak(() => {
          const x = fixtureInputs();
          const y = forward(model, x, { training: false });
          const rel = relDiff(y.dataSync(), c.logits.flat());
          assert.ok(rel < 1e-4, `max |ours - torch| / max |torch| = ${rel}`);
          console.log(`# ${c.file}: max rel logit diff ${rel.toExponential(2)}`);
          tf.dispose([x, y]);
        });
      } finally {
        model.dispose();
      }
    });
  }

  it("uses the entry's statistics, not the class count's (a CIFAR-100 head with CIFAR-10 statistics)", async () => {
    const c = CASES.find((x) => x.entry.family === 'dm-wrn' && x.entry.numClasses === 100)!;
    assert.deepEqual(c.entry.normalization!.mean, [0.4914, 0.4822, 0.4465]);
    const wrong = { ...c.entry, normalization: { mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762], buffers: [] } };
    const logits = await logitsOf(wrong, join(RB, c.file), { IKL_CACHE: freshDir('rb-cache') });
    assert.ok(relDiff(logits, c.logits.flat()) > 1e-3);
  });

  it('refuses mu/sigma buffers that differ from the table, and keys of another architecture', async () => {
    const c = CASES.find((x) => (x.entry.normalization?.buffers.length ?? 0) > 0)!;
    const env = { IKL_CACHE: freshDir('rb-cache') };
    const other = { ...c.entry, normalization: { ...c.entry.normalization!, mean: [0.5, 0.5, 0.5] } };
    await rejectsInput(loadRobustBenchModel(other, join(RB, c.file), env), /mu = \[0\.49.*expected \[0\.5, 0\.5, 0\.5\]/);
    await rejectsInput(loadRobustBenchModel({ ...c.entry, normalization: null }, join(RB, c.file), env), /unexpected \(mu, sigma\)/);
    await rejectsInput(loadRobustBenchModel({ ...c.entry, arch: 'wrn-16-1' }, join(RB, c.file), env), /missing/);
  });

  it('records the sha256 the first time and refuses a different file under the same name', async () => {
    const env = { IKL_CACHE: freshDir('rb-cache') };
    const [a, b] = CASES;
    const entry = { ...a!.entry, name: 'Same_Name' };
    const file = join(freshDir('rb-file'), 'm.pt');
    copyFileSync(join(RB, a!.file), file);
    (await loadRobustBenchModel(entry, file, env)).model.dispose();
    const record = JSON.parse(readFileSync(join(env.IKL_CACHE, 'robustbench', 'checksums.json'), 'utf8')) as Record<string, string>;
    assert.deepEqual(record, { [`${entry.dataset}/${entry.threat}/Same_Name`]: sha256(readFileSync(file)) });
    (await loadRobustBenchModel(entry, file, env)).model.dispose();
    copyFileSync(join(RB, b!.file), file);
    await rejectsInput(loadRobustBenchModel(entry, file, env), /checksums\.json records [0-9a-f]{64} for cifar10\/Linf\/Same_Name/);
  });
});

describe('the Google Drive download (local server)', () => {
  const c = CASES[0]!;
  const BODY = readFileSync(join(RB, c.file));
  let server: Server;
  let base: string;
  const seen: { url: string; range?: string }[] = [];
  let truncateNext = 0;
  before(async () => {
    server = createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      seen.push({ url: req.url ?? '', range: req.headers.range });
      const id = u.searchParams.get('id');
      const sendFile = (): void => {
        const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
        const from = m ? Number(m[1]) : 0;
        const part = BODY.subarray(from);
        res.writeHead(m ? 206 : 200, { 'content-type': 'application/octet-stream', 'content-length': String(part.length) });
        if (truncateNext > 0) {
          res.write(part.subarray(0, truncateNext));
          truncateNext = 0;
          setTimeout(() => res.destroy(), 20);
          return;
        }
        res.end(part);
      };
      if (u.pathname === '/uc' && id === 'form-id') {
        // Today's page: a form to drive.usercontent.google.com with hidden fields.
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(
          `<html><title>Google Drive - Virus scan warning</title><form id="download-form" action="/download" method="get">` +
            `<input type="hidden" name="id" value="form-id"><input type="hidden" name="export" value="download">` +
            `<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="u-1"></form></html>`,
        );
      } else if (u.pathname === '/uc' && id === 'cookie-id' && u.searchParams.get('confirm') !== 'TOKEN') {
        // RobustBench's download_gdrive: the token of the download_warning cookie.
        res.writeHead(200, { 'content-type': 'text/html', 'set-cookie': 'download_warning_123=TOKEN; Path=/' });
        res.end('<html><title>confirm</title></html>');
      } else if (u.pathname === '/uc' && id === 'quota-id') {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<html><title>Google Drive - Quota exceeded</title></html>');
      } else if ((u.pathname === '/download' && u.searchParams.get('uuid') === 'u-1') || (u.pathname === '/uc' && id === 'cookie-id')) {
        sendFile();
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/uc?export=download&confirm=t`;
  });
  after(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });

  it('follows the confirmation form, resumes an interrupted download with Range, and the file loads', async () => {
    const env = { IKL_CACHE: freshDir('rb-dl') };
    const entry = { ...c.entry, gdriveId: 'form-id' };
    const paths = robustBenchPaths(entry, env);
    truncateNext = 100_000;
    await rejectsInput(
      ensureRobustBenchFile(entry, { gdriveUrl: base, env, progress: false }),
      /download interrupted.*put it at .*robustbench\/cifar10\/Linf\//,
    );
    assert.ok(!existsSync(paths.cache));
    assert.equal(readFileSync(`${paths.cache}.part`).length, 100_000);
    const before = seen.length;
    assert.equal(await ensureRobustBenchFile(entry, { gdriveUrl: base, env, progress: false }), paths.cache);
    assert.ok(seen.slice(before).some((s) => s.url.startsWith('/download?') && s.range === 'bytes=100000-'));
    assert.ok(!existsSync(`${paths.cache}.part`));
    assert.equal(sha256(readFileSync(paths.cache)), sha256(BODY));
    const logits = await logitsOf(entry, paths.cache, env);
    assert.ok(relDiff(logits, c.logits.flat()) < 1e-4);
    // Found in the cache: no request.
    const n = seen.length;
    await ensureRobustBenchFile(entry, { gdriveUrl: base, env, progress: false });
    assert.equal(seen.length, n);
  });

  it('takes the download_warning cookie token as RobustBench does', async () => {
    const env = { IKL_CACHE: freshDir('rb-dl') };
    const file = await ensureRobustBenchFile({ ...c.entry, gdriveId: 'cookie-id' }, { gdriveUrl: base, env, progress: false });
    assert.equal(sha256(readFileSync(file)), sha256(BODY));
    assert.ok(seen.some((s) => s.url.includes('id=cookie-id') && s.url.includes('confirm=TOKEN')));
  });

  it('processes starting together download once (a lock); a dead process’s lock is taken over', async () => {
    const { hostname } = await import('node:os');
    const env = { IKL_CACHE: freshDir('rb-dl') };
    const entry = { ...c.entry, gdriveId: 'cookie-id' };
    const fileRequests = () => seen.filter((s) => s.url.includes('id=cookie-id') && s.url.includes('confirm=TOKEN')).length;
    const before = fileRequests();
    const got = await Promise.all([1, 2, 3].map(() => ensureRobustBenchFile(entry, { gdriveUrl: base, env, progress: false })));
    assert.deepEqual(got, Array(3).fill(robustBenchPaths(entry, env).cache));
    assert.equal(fileRequests() - before, 1);
    assert.ok(!existsSync(`${got[0]}.lock`));
    const other = { ...entry, name: 'Other_Name' };
    const dest = robustBenchPaths(other, env).cache;
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(`${dest}.lock`, `${hostname()} 2147483646`); // no such process
    assert.equal(await ensureRobustBenchFile(other, { gdriveUrl: base, env, progress: false }), dest);
    assert.equal(sha256(readFileSync(dest)), sha256(BODY));
  });

  it("RobustBench's own models/ layout is used as it is", async () => {
    const cwd = freshDir('rb-cwd');
    const env = { IKL_CACHE: freshDir('rb-dl') };
    const entry = { ...c.entry, gdriveId: 'nowhere' };
    const target = join(cwd, robustBenchPaths(entry, env).robustbench);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, BODY);
    const old = process.cwd();
    process.chdir(cwd);
    try {
      assert.equal(await ensureRobustBenchFile(entry, { gdriveUrl: base, env, download: false }), join('models', 'cifar10', 'Linf', `${c.entry.name}.pt`));
    } finally {
      process.chdir(old);
    }
  });

  it('a page without the file, no network, or downloading disabled: which file to put where', async () => {
    const env = { IKL_CACHE: freshDir('rb-dl') };
    const cache = (e: RobustBenchEntry): string => robustBenchPaths(e, env).cache.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const quota = { ...c.entry, gdriveId: 'quota-id' };
    await rejectsInput(ensureRobustBenchFile(quota, { gdriveUrl: base, env, progress: false }), new RegExp(`Quota exceeded.*put it at ${cache(quota)}`));
    const off = { ...c.entry, gdriveId: 'some-id' };
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await rejectsInput(
      ensureRobustBenchFile(off, { gdriveUrl: `http://127.0.0.1:${port}/uc?export=download`, env, progress: false }),
      new RegExp(`could not download .*download https://drive\\.google\\.com/uc\\?id=some-id .*put it at ${cache(off)}`),
    );
    await rejectsInput(ensureRobustBenchFile(off, { env, download: false }), /downloading is disabled/);
    assert.ok(!existsSync(robustBenchPaths(off, env).cache));
  });
});

test("the report's comparison: percent points against the leaderboard, and what keeps it from being comparable", () => {
  const e = findRobustBenchEntry('robustbench:Cui2023Decoupled_WRN-34-10', { dataset: 'cifar10' });
  const full = { attack: 'autoattack', eps: 8 / 255, norm: 'linf', n_examples: 10_000, n_examples_total: 10_000, clean_acc: 0.8525, robust_acc: 0.5712 };
  const r = compareWithRobustBench(e, full);
  assert.deepEqual(r.reported, { clean_acc: 85.31, autoattack_acc: 57.09 });
  assert.deepEqual(r.ours, { clean_acc: 85.25, robust_acc: 57.12 });
  assert.deepEqual(r.difference, { clean_acc: -0.06, robust_acc: 0.03 });
  assert.deepEqual([r.comparable, r.differs], [true, []]);
  const sub = compareWithRobustBench(e, { ...full, attack: 'pgd', n_examples: 500, eps: 0.031 });
  assert.equal(sub.comparable, false);
  assert.equal(sub.differs.length, 3);
  assert.equal(parseRobustBenchEps('8/255'), 8 / 255);
  assert.equal(parseRobustBenchEps('0.5'), 0.5);
});

test('ikl-train --init-from robustbench:<name>: the weights of the entry, refused for another architecture or other statistics', async () => {
  const { initModelFrom } = await import('../../src/interop/init-from.js');
  const { createModel } = await import('../../src/models/index.js');
  const env = { IKL_CACHE: freshDir('rb-init') };
  const trades = CASES.find((x) => x.entry.family === 'trades-wrn' && x.entry.normalization === null)!;
  const dm = CASES.find((x) => x.entry.family === 'dm-wrn')!;
  const table = [trades.entry, dm.entry];
  for (const c of [trades, dm]) {
    const p = robustBenchPaths(c.entry, env).cache;
    mkdirSync(dirname(p), { recursive: true });
    copyFileSync(join(RB, c.file), p);
  }
  const opts = (dataset: string) => ({ dataset, robustbench: { table, env, download: false } });
  const model = createModel({ arch: parseArch(trades.entry.arch), numClasses: 10, seed: 0 });
  try {
    const r = await initModelFrom(model, trades.entry.arch, `robustbench:${trades.entry.name}`, opts('cifar10'));
    assert.deepEqual([r.kind, r.sha256], ['robustbench', sha256(readFileSync(join(RB, trades.file)))]);
    await noLeak(() => {
      const x = fixtureInputs();
      const y = forward(model, x, { training: false });
      assert.ok(relDiff(y.dataSync(), trades.logits.flat()) < 1e-4);
      tf.dispose([x, y]);
    });
    await rejectsInput(initModelFrom(model, 'wrn-10-1', `robustbench:${trades.entry.name}`, opts('cifar10')), /is a wrn-16-1 .*model\.arch is wrn-10-1/);
  } finally {
    model.dispose();
  }
  // The Swish WRN of a CIFAR-100 config normalises with CIFAR-100 statistics; this entry uses CIFAR-10's.
  const swish = createModel({ arch: parseArch(dm.entry.arch), numClasses: 100, seed: 0 });
  try {
    await rejectsInput(
      initModelFrom(swish, dm.entry.arch, `robustbench:${dm.entry.name}`, opts('cifar100')),
      /normalises its input with mean \[0\.4914.*with mean \[0\.5071/,
    );
  } finally {
    swish.dispose();
  }
});

test("our exports are byte-identical to the files RobustBench's own modules loaded strictly with the same logits (export_check.json)", async () => {
  const { exportModel } = await import('../../src/interop/index.js');
  const check = JSON.parse(readFileSync(join(RB, 'export_check.json'), 'utf8')) as {
    results: { file: string; sha256: string; strict_load: string; max_rel_logit_diff: number }[];
  };
  const env = { IKL_CACHE: freshDir('rb-cache') };
  const dir = freshDir('rb-export');
  assert.equal(check.results.length, CASES.length + FIXTURE.reduced.length);
  const { REDUCED_BUILDERS, setNormalization } = await import('../../src/models/archs.js');
  const { importIntoModel, readStateDictFile } = await import('../../src/interop/index.js');
  for (const c of FIXTURE.reduced) {
    const model = REDUCED_BUILDERS[c.family](c.width, c.numClasses);
    setNormalization(model, c.normalization.mean, c.normalization.std);
    importIntoModel(model, mappingFor(c.family), await readStateDictFile(join(RB, c.file)), c.file, c.family);
    const digest = await exportModel(model, c.family, join(dir, c.file));
    model.dispose();
    const checked = check.results.find((r) => r.file === c.file)!;
    assert.equal(digest, checked.sha256, `${c.file}: the export's bytes changed since the check; rerun scripts/fixtures/robustbench-export.mjs`);
    assert.equal(checked.strict_load, 'ok');
  }
  for (const c of CASES) {
    const checked = check.results.find((r) => r.file === c.file)!;
    const m = await loadRobustBenchModel(c.entry, join(RB, c.file), env);
    const digest = await exportModel(m.model, c.entry.family, join(dir, c.file));
    m.model.dispose();
    assert.equal(digest, checked.sha256, `${c.file}: the export's bytes changed since the check; rerun scripts/fixtures/robustbench-export.mjs`);
    assert.equal(checked.strict_load, 'ok');
    assert.ok(checked.max_rel_logit_diff < 1e-4);
  }
});

describe('ikl-export --robustbench-info: the model-info JSON from an AutoAttack report of these weights', () => {
  const setup = async () => {
    const { writeCheckpoint, readCheckpoint } = await import('../../src/checkpoint/index.js');
    const { createModel } = await import('../../src/models/index.js');
    const dir = freshDir('rb-info');
    const model = createModel({ arch: 'wrn-10-1', numClasses: 10, seed: 5 });
    const ckpt = join(dir, 'ckpt');
    await writeCheckpoint(ckpt, { model, meta: { arch: 'wrn-10-1', numClasses: 10, dataset: 'cifar10', epoch: 1, step: 1 } });
    model.dispose();
    const c = await readCheckpoint(ckpt);
    c.model.dispose();
    // The fields of an ikl-eval report this reads (a real full-test-set AutoAttack run is hours of CPU).
    const report = {
      tool: 'ikl-eval',
      checkpoint: ckpt,
      weights_sha256: c.weightsSha256,
      arch: 'wrn-10-1',
      num_classes: 10,
      dataset: 'cifar10',
      attack: 'autoattack',
      attack_params: { details: { version: 'standard' } },
      eps: 8 / 255,
      eps_input: '8/255',
      norm: 'linf',
      n_examples: 10_000,
      n_examples_total: 10_000,
      shard: null,
      slice: { start: 0, end: 10_000 },
      clean_acc: 0.8531,
      robust_acc: 0.57094,
    };
    return { dir, ckpt, report };
  };
  const write = (dir: string, name: string, v: unknown): string => {
    const f = join(dir, name);
    writeFileSync(f, JSON.stringify(v));
    return f;
  };

  it('fills every field RobustBench asks for, the paper fields from --paper-info, and loads as RobustBench names it', async () => {
    const { exportSource } = await import('../../src/interop/export.js');
    const { dir, ckpt, report } = await setup();
    const paper = write(dir, 'paper.json', { name: 'Our paper', authors: 'A, B', additional_data: true, footnote: 'It uses 1M generated images.' });
    const to = join(dir, 'Ours_WRN-10-1.pt');
    const r = await exportSource(ckpt, to, { robustbench: { report: write(dir, 'aa.json', report), paperInfo: paper } });
    assert.deepEqual(r.robustbench, {
      info_file: join(dir, 'Ours_WRN-10-1.json'),
      dataset: 'cifar10',
      threat: 'Linf',
      constructor: 'WideResNet(depth=10, num_classes=10, widen_factor=1)',
      to_fill: ['link', 'venue'],
    });
    assert.deepEqual(JSON.parse(readFileSync(r.robustbench.info_file, 'utf8')), {
      link: '',
      name: 'Our paper',
      authors: 'A, B',
      additional_data: true,
      number_forward_passes: 1,
      dataset: 'cifar10',
      venue: '',
      architecture: 'WideResNet-10-1',
      eps: '8/255',
      clean_acc: '85.31',
      reported: '57.09',
      autoattack_acc: '57.09',
      footnote: 'It uses 1M generated images.',
      unreliable: false,
    });
    // The state_dict is WideResNet's: the keys of RobustBench's own module (as in its leaderboard files).
    const { readStateDictFile } = await import('../../src/interop/index.js');
    const keys = [...(await readStateDictFile(to)).tensors.keys()];
    const official = [...(await readStateDictFile(join(RB, CASES.find((x) => x.entry.arch === 'wrn-10-1')!.file))).tensors.keys()]
      .map((k) => k.replace(/^model\./, ''))
      .filter((k) => k !== 'mu' && k !== 'sigma');
    assert.deepEqual(new Set(keys), new Set(official));
  });

  it('refuses by name a subset, a shard, another model, another attack or an unknown paper field; nothing is written', async () => {
    const { exportSource } = await import('../../src/interop/export.js');
    const { dir, ckpt, report } = await setup();
    const to = join(dir, 'refused.pt');
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ n_examples: 1000, n_examples_total: 1000, slice: { start: 0, end: 1000 } }, /covers 1000 examples \[0, 1000\) of 1000, a subset/],
      [{ n_examples: 2500, slice: { start: 2500, end: 5000 } }, /covers 2500 examples \[2500, 5000\) of 10000, a subset.*ikl-eval merge/],
      [{ weights_sha256: 'f'.repeat(64) }, /is the report of another model \(weights_sha256 ffffffffffff/],
      [{ attack: 'pgd', attack_params: { details: {} } }, /attack pgd; the leaderboard's number is standard AutoAttack/],
      [{ attack_params: { details: { version: 'plus' } } }, /attack autoattack plus/],
      [{ tool: 'other' }, /not an ikl-eval report/],
    ];
    for (const [change, re] of cases) {
      await rejectsInput(exportSource(ckpt, to, { robustbench: { report: write(dir, 'r.json', { ...report, ...change }) } }), re);
    }
    const bad = write(dir, 'paper.json', { title: 'x' });
    await rejectsInput(exportSource(ckpt, to, { robustbench: { report: write(dir, 'r.json', report), paperInfo: bad } }), /unknown field 'title'/);
    assert.ok(!existsSync(to) && !existsSync(join(dir, 'refused.json')));
  });
});

test('as a user types it: ikl-eval --model without a network says which file to put where (exit 2); ikl-export --robustbench-info', async () => {
  const { spawnSync } = await import('node:child_process');
  const root = new URL('../../..', import.meta.url).pathname;
  const cache = freshDir('rb-cli');
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const env = { ...process.env, IKL_CACHE: cache, IKL_GDRIVE_URL: `http://127.0.0.1:${port}/uc?export=download` };
  const run = (bin: string, args: string[]) => spawnSync(process.execPath, [join(root, 'bin', bin), ...args], { encoding: 'utf8', env, timeout: 120_000 });
  const r = run('ikl-eval.js', ['--model', 'robustbench:Cui2023Decoupled_WRN-34-10', '--dataset', 'cifar10', '--attack', 'pgd', '--log-format', 'json']);
  assert.equal(r.status, 2, r.stderr);
  const line = r.stderr.split('\n').find((l) => l.startsWith('ikl-eval:'))!;
  assert.ok(line.includes(`put it at ${join(cache, 'robustbench', 'cifar10', 'Linf', 'Cui2023Decoupled_WRN-34-10.pt')}`), line);
  assert.ok(line.includes('https://drive.google.com/uc?id=1-ArD-TugRXUbH3VtM9qnzvby6NvdXNUN'), line);
  const both = run('ikl-eval.js', ['--model', 'robustbench:X', '--checkpoint', 'c', '--attack', 'pgd']);
  assert.equal(both.status, 2);
  assert.match(both.stderr, /ikl-eval: --model: give --model or --checkpoint, not both/);
  const orphan = run('ikl-export.js', ['ckpt', '--to', join(cache, 'm.pt'), '--paper-info', 'p.json']);
  assert.equal(orphan.status, 2);
  assert.match(orphan.stderr, /ikl-export: --paper-info: only means something with --robustbench-info <report>/);
});
