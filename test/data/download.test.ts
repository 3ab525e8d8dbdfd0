import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { readCifar10 } from '../../src/data/cifar.js';
import { ensureCifar } from '../../src/data/download.js';
import { extractTarGz, safeMemberName } from '../../src/data/tar.js';
import { InputError } from '../../src/errors.js';
import { cifarRecords, freshDir, paxRecord, tarGz, type TarMember } from './fixtures.js';

const md5 = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

/** A tiny but complete CIFAR-10 archive: 2 records per training batch, 3 test records, plus a readme. */
function tinyCifar10Members(): TarMember[] {
  const m: TarMember[] = [{ name: 'cifar-10-batches-bin/', type: '5' }];
  for (let b = 1; b <= 5; b++) m.push({ name: `cifar-10-batches-bin/data_batch_${b}.bin`, data: cifarRecords([b, b + 1], undefined, 2 * (b - 1)) });
  m.push({ name: 'cifar-10-batches-bin/test_batch.bin', data: cifarRecords([0, 9, 4]) });
  m.push({ name: 'cifar-10-batches-bin/batches.meta.txt', data: Buffer.from('airplane\n') });
  m.push({ name: 'cifar-10-batches-bin/readme.html', data: Buffer.from('<html></html>') });
  return m;
}
const TINY = tarGz(tinyCifar10Members());

/** Serves routes from memory; counts requests. '/truncated' promises more bytes than it sends. */
let server: Server;
let base: string;
let requests = 0;
const routes = new Map<string, Buffer>();
before(async () => {
  server = createServer((req, res) => {
    requests++;
    if (req.url === '/truncated') {
      res.writeHead(200, { 'content-length': String(TINY.length) });
      res.write(TINY.subarray(0, 1000));
      setTimeout(() => res.destroy(), 20);
      return;
    }
    if (req.url === '/stall') {
      res.writeHead(200, { 'content-length': String(TINY.length) });
      res.write(TINY.subarray(0, 100)); // then nothing: the client must give up by itself
      return;
    }
    const body = routes.get(req.url ?? '');
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': String(body.length), 'content-type': 'application/gzip' }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  routes.set('/cifar-10-binary.tar.gz', TINY);
});
after(() => {
  server.closeAllConnections();
  return new Promise<void>((r) => server.close(() => r()));
});

/** Entries of the data dir other than the expected ones (temp files, partial folders). */
function leftovers(dataDir: string, allowed: string[]): string[] {
  return existsSync(dataDir) ? readdirSync(dataDir).filter((n) => !allowed.includes(n)) : [];
}

describe('ensureCifar', () => {
  it('downloads, verifies and extracts only the expected members; a second call uses the folder', async () => {
    const dataDir = join(freshDir('dl'), 'data');
    const before = requests;
    const folder = await ensureCifar('cifar10', dataDir, { url: `${base}/cifar-10-binary.tar.gz`, md5: md5(TINY), progress: false });
    assert.equal(folder, join(dataDir, 'cifar-10-batches-bin'));
    assert.equal(requests, before + 1);
    assert.deepEqual(readdirSync(folder).sort(), [
      'batches.meta.txt',
      'data_batch_1.bin',
      'data_batch_2.bin',
      'data_batch_3.bin',
      'data_batch_4.bin',
      'data_batch_5.bin',
      'test_batch.bin',
    ]);
    assert.deepEqual(leftovers(dataDir, ['cifar-10-batches-bin', 'cifar-10-binary.tar.gz']), []);
    assert.equal(md5(readFileSync(join(dataDir, 'cifar-10-binary.tar.gz'))), md5(TINY));
    const { train, test } = await readCifar10(folder, { recordsPerBatch: 2, testRecords: 3 });
    assert.deepEqual(Array.from(train.labels), [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]);
    assert.deepEqual(Array.from(test.labels), [0, 9, 4]);
    assert.deepEqual(readFileSync(join(folder, 'test_batch.bin')), cifarRecords([0, 9, 4]));

    await ensureCifar('cifar10', dataDir, { url: `${base}/cifar-10-binary.tar.gz`, md5: md5(TINY), download: false });
    assert.equal(requests, before + 1, 'no second download');
  });

  it('a download with the wrong MD5 leaves no folder, no archive and no temp file', async () => {
    const dataDir = freshDir('badmd5');
    await assert.rejects(ensureCifar('cifar10', dataDir, { url: `${base}/cifar-10-binary.tar.gz`, md5: '0'.repeat(32), progress: false }), (e: Error) =>
      /MD5 [0-9a-f]{32}, expected 0{32}/.test(e.message),
    );
    assert.deepEqual(readdirSync(dataDir), []);
  });

  it('an interrupted download leaves nothing behind and says what to do offline', async () => {
    const dataDir = freshDir('trunc');
    await assert.rejects(ensureCifar('cifar10', dataDir, { url: `${base}/truncated`, md5: md5(TINY), progress: false }), (e: Error) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /interrupted/);
      assert.ok(e.message.includes(join(dataDir, 'cifar-10-binary.tar.gz')));
      return true;
    });
    assert.deepEqual(readdirSync(dataDir), []);
  });

  it('a stalled download is aborted after the stall timeout and cleaned up', async () => {
    const dataDir = freshDir('stall');
    const t0 = Date.now();
    await assert.rejects(
      ensureCifar('cifar10', dataDir, { url: `${base}/stall`, md5: md5(TINY), progress: false, stallTimeoutMs: 300 }),
      (e: Error) => e instanceof InputError && /no data for 0\.3 s/.test(e.message),
    );
    assert.ok(Date.now() - t0 < 10_000);
    assert.deepEqual(readdirSync(dataDir), []);
  });

  it('offline: the InputError names the archive to put where, or the folder to create', async () => {
    const dataDir = freshDir('offline');
    // a port that was just free: nothing listens there
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    await assert.rejects(ensureCifar('cifar10', dataDir, { url: `http://127.0.0.1:${port}/x.tar.gz`, progress: false }), (e: Error) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /could not download http:\/\/127\.0\.0\.1:\d+\/x\.tar\.gz \(fetch failed: ECONNREFUSED\)/);
      assert.ok(
        e.message.includes(
          `put cifar-10-binary.tar.gz (MD5 c32a1d4ab5d03f1284b67883e8d87530, from http://127.0.0.1:${port}/x.tar.gz) at ${join(dataDir, 'cifar-10-binary.tar.gz')}`,
        ),
      );
      assert.ok(e.message.includes(`or create ${join(dataDir, 'cifar-10-batches-bin')}/ holding data_batch_1.bin`));
      return true;
    });
    await assert.rejects(ensureCifar('cifar100', dataDir, { download: false }), (e: Error) => {
      assert.ok(e instanceof InputError);
      assert.ok(e.message.includes('downloading is disabled'));
      assert.ok(
        e.message.includes(
          `put cifar-100-binary.tar.gz (MD5 03b5dce01913d631647c71ecec9e9cb8, from https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz) at ${join(dataDir, 'cifar-100-binary.tar.gz')}`,
        ),
      );
      return true;
    });
    assert.deepEqual(readdirSync(dataDir), []);
  });

  it('extracts an archive the user placed in the data dir, after checking its MD5', async () => {
    const dataDir = freshDir('placed');
    writeFileSync(join(dataDir, 'cifar-10-binary.tar.gz'), TINY);
    await assert.rejects(ensureCifar('cifar10', dataDir, { download: false }), (e: Error) => {
      assert.ok(e instanceof InputError);
      assert.equal(
        e.message,
        `${join(dataDir, 'cifar-10-binary.tar.gz')}: MD5 ${md5(TINY)}, expected c32a1d4ab5d03f1284b67883e8d87530 ` +
          '(corrupt or not the official archive; delete it or replace it with https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz)',
      );
      return true;
    });
    assert.deepEqual(readdirSync(dataDir), ['cifar-10-binary.tar.gz']);
    const folder = await ensureCifar('cifar10', dataDir, { download: false, md5: md5(TINY) });
    assert.equal((await readCifar10(folder, { recordsPerBatch: 2, testRecords: 3 })).train.n, 10);
  });

  it('refuses archives with path traversal, links or missing members, leaving no folder', async () => {
    const cases: [string, TarMember[], RegExp][] = [
      ['traversal', [...tinyCifar10Members(), { name: 'cifar-10-batches-bin/../../x', data: Buffer.from('evil') }], /unsafe path/],
      ['dotdot', [{ name: '../x', data: Buffer.from('evil') }, ...tinyCifar10Members()], /member '\.\.\/x' has an unsafe path/],
      ['absolute', [{ name: '/tmp/x', data: Buffer.from('evil') }, ...tinyCifar10Members()], /unsafe path/],
      ['symlink', [{ name: 'cifar-10-batches-bin/test_batch.bin', type: '2', linkname: '/etc/passwd' }, ...tinyCifar10Members()], /symbolic link; refusing/],
      [
        'hardlink',
        [...tinyCifar10Members(), { name: 'cifar-10-batches-bin/x', type: '1', linkname: 'cifar-10-batches-bin/test_batch.bin' }],
        /hard link; refusing/,
      ],
      ['fifo', [...tinyCifar10Members(), { name: 'cifar-10-batches-bin/p', type: '6' }], /not a regular file/],
      // a harmless header name replaced by a pax 'path' record
      [
        'pax',
        [{ name: 'PaxHeader', type: 'x', data: paxRecord('path', '../escape') }, { name: 'ok.txt', data: Buffer.from('evil') }, ...tinyCifar10Members()],
        /'\.\.\/escape' has an unsafe path/,
      ],
      ['missing', tinyCifar10Members().filter((m) => !m.name.endsWith('data_batch_4.bin')), /missing member cifar-10-batches-bin\/data_batch_4\.bin/],
      ['duplicate', [...tinyCifar10Members(), { name: 'cifar-10-batches-bin/test_batch.bin', data: Buffer.from('x') }], /appears twice/],
    ];
    for (const [what, members, pattern] of cases) {
      const root = freshDir(what);
      const dataDir = join(root, 'data');
      mkdirSync(dataDir);
      const tgz = tarGz(members);
      writeFileSync(join(dataDir, 'cifar-10-binary.tar.gz'), tgz);
      await assert.rejects(ensureCifar('cifar10', dataDir, { download: false, md5: md5(tgz) }), (e: Error) => {
        assert.ok(e instanceof InputError, `${what}: ${e.message}`);
        assert.match(e.message, pattern, what);
        assert.ok(e.message.startsWith(join(dataDir, 'cifar-10-binary.tar.gz')), what);
        return true;
      });
      assert.deepEqual(readdirSync(dataDir), ['cifar-10-binary.tar.gz'], `${what}: leftovers in the data dir`);
      assert.deepEqual(readdirSync(root), ['data'], `${what}: something escaped the data dir`);
      if (what === 'absolute') assert.ok(!existsSync('/tmp/x') || readFileSync('/tmp/x', 'utf8') !== 'evil', 'wrote /tmp/x');
    }
  });

  it('rejects a corrupt gzip and a non-tar payload', async () => {
    const dir = freshDir('corrupt');
    const broken = Buffer.from(TINY);
    broken[Math.floor(broken.length / 2)]! ^= 0xff;
    writeFileSync(join(dir, 'a.tar.gz'), broken);
    mkdirSync(join(dir, 'out'));
    await assert.rejects(extractTarGz(join(dir, 'a.tar.gz'), ['cifar-10-batches-bin/test_batch.bin'], join(dir, 'out')), InputError);
    writeFileSync(join(dir, 'b.tar.gz'), gzipSync(Buffer.alloc(2048, 7)));
    await assert.rejects(extractTarGz(join(dir, 'b.tar.gz'), ['x'], join(dir, 'out')), /bad header checksum/);
  });

  it('an incomplete existing folder is reported, not silently used', async () => {
    const dataDir = freshDir('partial');
    mkdirSync(join(dataDir, 'cifar-100-binary'));
    writeFileSync(join(dataDir, 'cifar-100-binary', 'train.bin'), '');
    await assert.rejects(ensureCifar('cifar100', dataDir, { download: false }), {
      name: 'InputError',
      message: new RegExp(`^${join(dataDir, 'cifar-100-binary', 'test.bin').replace(/[.]/g, '\\.')}: missing`),
    });
  });

  it('safeMemberName normalises harmless names and rejects escapes', () => {
    assert.equal(safeMemberName('./cifar-10-batches-bin//test_batch.bin'), 'cifar-10-batches-bin/test_batch.bin');
    assert.equal(safeMemberName('a/b/'), 'a/b');
    for (const bad of ['../x', 'a/../../x', '/etc/passwd', 'C:/x', 'a\\..\\x', 'a/..']) assert.equal(safeMemberName(bad), null, bad);
  });
});
