/**
 * Durable file primitives: every byte of a checkpoint is fsynced before the checkpoint becomes visible, so a
 * power cut or a kill -9 can lose the newest checkpoint but never leave a half-written one in its place.
 */
import { createHash } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import type { FileDigest } from './types.js';

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Writes a file, fsyncs it, and returns its size and sha256. */
export async function writeFileDurable(path: string, bytes: Uint8Array): Promise<FileDigest> {
  const fh = await open(path, 'wx');
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { bytes: bytes.byteLength, sha256: sha256(bytes) };
}

/** fsyncs a file written by someone else (the model files) and returns its size and sha256. */
export async function syncAndDigest(path: string): Promise<FileDigest> {
  const fh = await open(path, 'r+');
  try {
    await fh.sync();
    const bytes = new Uint8Array(await fh.readFile());
    return { bytes: bytes.byteLength, sha256: sha256(bytes) };
  } finally {
    await fh.close();
  }
}

export { syncDir } from '../files.js';

/** Reads a file and checks it against its recorded size and sha256; returns the bytes or a reason. */
export async function readVerified(path: string, digest: FileDigest): Promise<{ bytes: Uint8Array } | { problem: string }> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch {
    return { problem: 'missing' };
  }
  if (size !== digest.bytes) return { problem: `has ${size} bytes, expected ${digest.bytes} (truncated or overwritten)` };
  const bytes = new Uint8Array(await readFile(path));
  const got = sha256(bytes);
  if (got !== digest.sha256) {
    return { problem: `checksum mismatch (sha256 ${got.slice(0, 12)}..., expected ${digest.sha256.slice(0, 12)}...): the file is corrupt` };
  }
  return { bytes };
}
