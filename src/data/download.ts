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
  const tmp = `${dest}.part-${process.pid}-${randomBytes(4).toString('hex')}`;
  const offline = (why: string) => new InputError(`${ctx.name}: could not download ${url} (${why}); offline: ${ctx.offlineHelp}`);
  let bar: cliProgress.SingleBar | undefined;
  // A connection that goes silent would otherwise hang the run forever; every received chunk re-arms the timer.
  const abort = new AbortController();
  const stall = setTimeout(() => abort.abort(new Error(`no data for ${ctx.stallMs / 1000} s`)), ctx.stallMs);
  try {
    let res: Response;
    try {
      res = await fetch(url, { signal: abort.signal });
    } catch (e) {
      throw offline(describeFetchError(e));
    }
    if (!res.ok || res.body === null) throw offline(`HTTP ${res.status} ${res.statusText}`.trim());
    const total = Number(res.headers.get('content-length') ?? 0);
    ctx.log.info({ url, bytes: total || undefined }, `downloading ${ctx.name}`);
    if (ctx.progress && total > 0) {
      bar = new cliProgress.SingleBar(
        { format: `${ctx.name} {bar} {percentage}% | {value}/{total} MB | ETA {eta}s`, stream: process.stderr, hideCursor: true },
        cliProgress.Presets.shades_classic,
      );
      bar.start(Math.round(total / 1e6), 0);
    }
    const hash = createHash('md5');
    let got = 0;
    const fh = await open(tmp, 'wx');
    try {
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          hash.update(chunk);
          await fh.write(chunk);
          got += chunk.length;
          stall.refresh();
          bar?.update(Math.round(got / 1e6));
        }
      } catch (e) {
        // A local write failure (disk full...) is not a network problem: report it as it is.
        if ((e as NodeJS.ErrnoException).syscall === 'write') throw e;
        throw offline(`download interrupted after ${got} bytes: ${describeFetchError(e)}`);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (total > 0 && got !== total) throw offline(`download interrupted: got ${got} of ${total} bytes`);
    const found = hash.digest('hex');
    if (found !== md5) throw new Error(`${url}: downloaded file has MD5 ${found}, expected ${md5}; it was deleted, try again`);
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { force: true });
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
