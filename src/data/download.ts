/**
 * Makes sure a CIFAR binary folder exists in the data directory, downloading and extracting the official archive
 * when it does not.
 *
 * Nothing incomplete ever carries a final name: the download goes to a `.part-*` temp file that is renamed to the
 * archive name only after its MD5 matches, and extraction goes to a temp folder that is renamed into place in one
 * step. Every failure removes its temp files.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { InputError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { CIFAR100_DIR, CIFAR100_TEST_FILE, CIFAR100_TRAIN_FILE, CIFAR10_DIR, CIFAR10_TEST_FILE, CIFAR10_TRAIN_FILES } from './cifar.js';
import { extractTarGz } from './tar.js';

export interface CifarSource {
  /** Folder inside the data dir (and top folder inside the archive). */
  dir: string;
  /** Archive file name inside the data dir. */
  archive: string;
  url: string;
  md5: string;
  /** Files the readers need, relative to `dir`. */
  files: readonly string[];
  /** Extracted too when present (class names). */
  optionalFiles: readonly string[];
}

export const CIFAR_SOURCES: Record<'cifar10' | 'cifar100', CifarSource> = {
  cifar10: {
    dir: CIFAR10_DIR,
    archive: 'cifar-10-binary.tar.gz',
    url: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz',
    md5: 'c32a1d4ab5d03f1284b67883e8d87530',
    files: [...CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE],
    optionalFiles: ['batches.meta.txt'],
  },
  cifar100: {
    dir: CIFAR100_DIR,
    archive: 'cifar-100-binary.tar.gz',
    url: 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz',
    md5: '03b5dce01913d631647c71ecec9e9cb8',
    files: [CIFAR100_TRAIN_FILE, CIFAR100_TEST_FILE],
    optionalFiles: ['fine_label_names.txt', 'coarse_label_names.txt'],
  },
};

export interface EnsureCifarOptions {
  /** Download the archive when neither the folder nor the archive is in the data dir. Default true. */
  download?: boolean;
  /** Override of the archive URL (tests, mirrors). */
  url?: string;
  /** Override of the expected MD5 (tests). */
  md5?: string;
  logger?: Logger;
  /** Progress bar on stderr. Default: only when stderr is a TTY. */
  progress?: boolean;
  /** Abort a download that receives no data for this long (ms). Default 60,000. */
  stallTimeoutMs?: number;
  /** The files of the release that are needed (default all); an evaluation needs only the test file. */
  needed?: readonly string[];
}

async function exists(p: string): Promise<'file' | 'dir' | null> {
  try {
    const s = await stat(p);
    return s.isDirectory() ? 'dir' : 'file';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Hex MD5 of a file, streamed. */
export async function md5File(file: string): Promise<string> {
  const h = createHash('md5');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Missing required files of an existing folder, as paths. */
async function missingFiles(folder: string, files: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const f of files) if ((await exists(join(folder, f))) !== 'file') out.push(join(folder, f));
  return out;
}

/**
 * Returns the path of the `cifar-10-batches-bin/` or `cifar-100-binary/` folder in `dataDir`, creating it from the
 * archive in `dataDir` (MD5 checked) or from a download when needed.
 */
export async function ensureCifar(name: 'cifar10' | 'cifar100', dataDir: string, opts: EnsureCifarOptions = {}): Promise<string> {
  const src = CIFAR_SOURCES[name];
  const url = opts.url ?? src.url;
  const md5 = opts.md5 ?? src.md5;
  const log = opts.logger ?? silentLogger;
  const folder = join(dataDir, src.dir);
  const archive = join(dataDir, src.archive);

  const have = await exists(folder);
  if (have === 'dir') {
    const missing = await missingFiles(folder, opts.needed ?? src.files);
    if (missing.length === 0) return folder;
    throw new InputError(
      `${missing[0]}: missing (${folder}/ exists but is incomplete: it needs ${src.files.join(', ')}; delete the folder to download it again)`,
    );
  }
  if (have === 'file') throw new InputError(`${folder}: expected a folder of ${name} binary files, found a file`);

  const offlineHelp = `put ${src.archive} (MD5 ${md5}, from ${url}) at ${archive}, or create ${folder}/ holding ${src.files.join(', ')}`;

  if ((await exists(archive)) === 'file') {
    log.info({ archive }, `verifying ${src.archive}`);
    const found = await md5File(archive);
    if (found !== md5) {
      throw new InputError(`${archive}: MD5 ${found}, expected ${md5} (corrupt or not the official archive; delete it or replace it with ${url})`);
    }
  } else {
    if (opts.download === false) throw new InputError(`${name}: ${folder}/ is missing and downloading is disabled; ${offlineHelp}`);
    await mkdir(dataDir, { recursive: true });
    await downloadVerified(url, md5, archive, {
      log,
      progress: opts.progress ?? process.stderr.isTTY === true,
      stallMs: opts.stallTimeoutMs ?? 60_000,
      offlineHelp,
      name,
    });
  }
  await extractInPlace(archive, src, dataDir, folder, log);
  return folder;
}

/**
 * Streams `url` into a temp file next to `dest`, checking MD5 on the fly; renames it to `dest` only when it matches.
 * Network failures → InputError with the offline instructions; a corrupt download → Error (try again).
 */
async function downloadVerified(
  url: string,
  md5: string,
  dest: string,
  ctx: { log: Logger; progress: boolean; stallMs: number; offlineHelp: string; name: string },
): Promise<void> {
  await downloadFile(url, dest, { ...ctx, hash: 'md5', expected: md5 });
}

export interface DownloadOptions {
  /** What is downloaded, in messages and on the progress bar. */
  name: string;
  /** What to do without a network (ends the error message of a failed download). */
  offlineHelp: string;
  log: Logger;
  progress: boolean;
  /** Abort when no data arrives for this long (ms). */
  stallMs: number;
  hash: 'md5' | 'sha256';
  /** Expected digest (hex): a mismatch deletes the download. Absent: the digest is returned to be recorded. */
  expected?: string;
  /**
   * Keep an interrupted download as `<dest>.part` and continue it with an HTTP Range request next time (a server
   * that ignores Range sends everything again, which replaces the part). Default: a fresh temp file per attempt.
   */
  resumable?: boolean;
  /**
   * A response that is a page rather than the file (Google Drive's "cannot scan for viruses" confirmation):
   * return the URL to request instead, or null when the response is the file. At most two hops.
   */
  follow?: (res: Response) => Promise<string | null>;
}

/**
 * Downloads `url` to `dest` (nothing incomplete ever carries the name `dest`): streams into a part file, hashing on
 * the fly, renames when complete and (with `expected`) matching. Returns the digest and size.
 * Network failures → InputError with the offline instructions; a wrong digest → Error (the part is deleted).
 */
export async function downloadFile(url: string, dest: string, ctx: DownloadOptions): Promise<{ digest: string; bytes: number }> {
  const tmp = ctx.resumable ? `${dest}.part` : `${dest}.part-${process.pid}-${randomBytes(4).toString('hex')}`;
  const offline = (why: string) => new InputError(`${ctx.name}: could not download ${url} (${why}); offline: ${ctx.offlineHelp}`);
  let bar: cliProgress.SingleBar | undefined;
  // A connection that goes silent would otherwise hang the run forever; every received chunk re-arms the timer.
  const abort = new AbortController();
  const stall = setTimeout(() => abort.abort(new Error(`no data for ${ctx.stallMs / 1000} s`)), ctx.stallMs);
  let keepPart = false;
  try {
    const hash = createHash(ctx.hash);
    // Bytes already on disk from an interrupted attempt: hashed again, then continued from where they end.
    let have = 0;
    if (ctx.resumable && (await exists(tmp)) === 'file') {
      for await (const chunk of createReadStream(tmp)) {
        hash.update(chunk as Buffer);
        have += (chunk as Buffer).length;
      }
    }
    const request = async (u: string): Promise<Response> => {
      try {
        return await fetch(u, { signal: abort.signal, headers: have > 0 ? { range: `bytes=${have}-` } : {} });
      } catch (e) {
        throw offline(describeFetchError(e));
      }
    };
    let res = await request(url);
    for (let hop = 0; ctx.follow && res.ok && hop < 2; hop++) {
      const next = await ctx.follow(res);
      if (next === null) break;
      res = await request(next);
    }
    if (!res.ok || res.body === null) throw offline(`HTTP ${res.status} ${res.statusText}`.trim());
    if (have > 0 && res.status !== 206) {
      // The server sends the whole file: start over.
      ctx.log.info({ url }, `${ctx.name}: the server does not resume; downloading from the start`);
      have = 0;
    }
    const resumed = have > 0;
    const h = resumed ? hash : createHash(ctx.hash);
    const length = Number(res.headers.get('content-length') ?? 0);
    const total = length > 0 ? length + have : 0;
    ctx.log.info({ url, bytes: total || undefined, resumed_at: resumed ? have : undefined }, `downloading ${ctx.name}`);
    if (ctx.progress && total > 0) {
      bar = new cliProgress.SingleBar(
        { format: `${ctx.name} {bar} {percentage}% | {value}/{total} MB | ETA {eta}s`, stream: process.stderr, hideCursor: true },
        cliProgress.Presets.shades_classic,
      );
      bar.start(Math.round(total / 1e6), Math.round(have / 1e6));
    }
    let got = have;
    const fh = await open(tmp, resumed ? 'a' : ctx.resumable ? 'w' : 'wx');
    try {
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          h.update(chunk);
          await fh.write(chunk);
          got += chunk.length;
          stall.refresh();
          bar?.update(Math.round(got / 1e6));
        }
      } catch (e) {
        // A local write failure (disk full...) is not a network problem: report it as it is.
        if ((e as NodeJS.ErrnoException).syscall === 'write') throw e;
        keepPart = ctx.resumable === true;
        throw offline(`download interrupted after ${got} bytes: ${describeFetchError(e)}`);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (total > 0 && got !== total) {
      keepPart = ctx.resumable === true;
      throw offline(`download interrupted: got ${got} of ${total} bytes`);
    }
    const digest = h.digest('hex');
    if (ctx.expected !== undefined && digest !== ctx.expected) {
      throw new Error(`${url}: downloaded file has ${ctx.hash.toUpperCase()} ${digest}, expected ${ctx.expected}; it was deleted, try again`);
    }
    await rename(tmp, dest);
    return { digest, bytes: got };
  } catch (e) {
    if (!keepPart) await rm(tmp, { force: true });
    throw e;
  } finally {
    clearTimeout(stall);
    bar?.stop();
  }
}

function describeFetchError(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err.name === 'AbortError' || err.name === 'TimeoutError') return err.message;
  const cause = err.cause?.code ?? err.cause?.message;
  return cause ? `${err.message}: ${cause}` : (err.message ?? String(e));
}

/** Extracts into a temp folder inside dataDir, then renames the member folder into place in one step. */
async function extractInPlace(archive: string, src: CifarSource, dataDir: string, folder: string, log: Logger): Promise<void> {
  const tmp = await mkdtemp(join(dataDir, `.${src.dir}.extract-`));
  try {
    log.info({ archive, folder }, `extracting ${src.archive}`);
    const member = (f: string) => `${src.dir}/${f}`;
    await extractTarGz(archive, src.files.map(member), tmp, src.optionalFiles.map(member));
    try {
      await rename(join(tmp, src.dir), folder);
    } catch (e) {
      // Another process may have finished the same extraction first; its folder is as good as ours.
      const code = (e as NodeJS.ErrnoException).code;
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && (await missingFiles(folder, src.files)).length === 0) return;
      throw e;
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
