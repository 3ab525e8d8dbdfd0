/**
 * The one atomic file write: a temporary file beside the target, fsync, rename over the target, fsync of the
 * directory. A reader (or a crash at any moment) sees the old file or the new one, never half of one.
 */
import { open, rename, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileError } from './errors.js';

/**
 * fsyncs a directory so that the names created or renamed in it survive a crash. Platforms that cannot open a
 * directory for syncing (Windows) skip it: there the rename itself is the durability point.
 */
export async function syncDir(path: string): Promise<void> {
  let fh;
  try {
    fh = await open(path, 'r');
    await fh.sync();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EBADF') throw e;
  } finally {
    await fh?.close();
  }
}

/**
 * Writes `data` to `file` through `<file>.tmp-<pid>`, fsync and rename, then fsyncs the directory entry. A file
 * error (missing folder, EACCES, ENOSPC) is an InputError naming `file`, not the temporary file; the previous
 * `file` is left intact and the temporary file removed.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw fileError(file, e, 'write', 'the previous version, if any, is intact');
  }
  await syncDir(dirname(file));
}

/**
 * The one cache folder of ikl-at (RobustBench files, the oneDNN probe's verdicts): $IKL_CACHE, else
 * $XDG_CACHE_HOME/ikl-at, else ~/.cache/ikl-at (where setup:native keeps the TensorFlow wheel too).
 */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.IKL_CACHE || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'ikl-at');
}
