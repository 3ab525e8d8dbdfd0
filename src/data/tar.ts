/**
 * A deliberately small tar reader over gunzip (node:zlib) that extracts a fixed list of members and nothing else.
 *
 * Archives are untrusted input: only regular files whose (normalised) name is exactly one of the expected members
 * are written; links, devices and FIFOs are refused outright, as are absolute names and names with a `..` segment,
 * wherever they appear in the archive. Directory entries and other safe regular files are skipped, never created.
 * Understands ustar (name prefix), pax extended headers (path, size) and GNU long names, so archives written by
 * GNU tar, bsdtar or Python's tarfile all read.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { InputError } from '../errors.js';

const BLOCK = 512;

/** Pulls exact byte counts out of a stream of chunks. */
class ChunkReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private ended = false;
  /** Bytes handed out so far: the offset in the decompressed archive, for error messages. */
  offset = 0;

  constructor(private readonly it: AsyncIterator<Buffer>) {}

  /** True when at least n bytes are buffered; false when the stream ended first. */
  async fill(n: number): Promise<boolean> {
    while (this.have < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else if (r.value.length > 0) {
        this.chunks.push(r.value);
        this.have += r.value.length;
      }
    }
    return this.have >= n;
  }

  buffered(): number {
    return this.have;
  }

  /** Up to n buffered bytes (at least one; call fill first). */
  takeUpTo(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length <= n) {
      out = first;
      this.chunks.shift();
    } else {
      out = first.subarray(0, n);
      this.chunks[0] = first.subarray(n);
    }
    this.have -= out.length;
    this.offset += out.length;
    return out;
  }

  /** Exactly n bytes, or null at end of stream (a partial block is reported by the caller). */
  async exact(n: number): Promise<Buffer | null> {
    if (!(await this.fill(n))) return null;
    const parts: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const b = this.takeUpTo(left);
      parts.push(b);
      left -= b.length;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
  }

  /** Feeds the next n bytes to sink chunk by chunk (no whole-member buffering). */
  async pipe(n: number, sink: ((b: Buffer) => Promise<void>) | null): Promise<boolean> {
    let left = n;
    while (left > 0) {
      if (!(await this.fill(1))) return false;
      const b = this.takeUpTo(left);
      left -= b.length;
      if (sink) await sink(b);
    }
    return true;
  }
}

function cString(b: Buffer, start: number, len: number): string {
  const field = b.subarray(start, start + len);
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? len : end).toString('utf8');
}

/** Numeric header field: octal text, or GNU base-256 (high bit set) for values that do not fit. */
function numField(b: Buffer, start: number, len: number): number {
  if ((b[start]! & 0x80) !== 0) {
    let v = b[start]! & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[start + i]!;
    return v;
  }
  const s = cString(b, start, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) return Number.NaN;
  return parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = numField(h, 148, 8);
  let unsigned = 0;
  for (let i = 0; i < BLOCK; i++) unsigned += i >= 148 && i < 156 ? 32 : h[i]!;
  return stored === unsigned;
}

/** pax records: "<len> <key>=<value>\n". */
function parsePax(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    const sp = data.indexOf(0x20, pos);
    if (sp < 0) break;
    const len = Number(data.subarray(pos, sp).toString('ascii'));
    if (!Number.isInteger(len) || len <= 0 || pos + len > data.length) break;
    const rec = data.subarray(sp + 1, pos + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    pos += len;
  }
  return out;
}

/**
 * Normalised member name, or null when it is unsafe (absolute, drive letter, backslash, a `..` segment, NUL).
 * `./a//b/` becomes `a/b` (directories are recognised by their type flag, not the slash).
 */
export function safeMemberName(raw: string): string | null {
  if (raw.includes('\0') || raw.includes('\\') || raw.startsWith('/') || /^[A-Za-z]:/.test(raw)) return null;
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) return null;
  return parts.join('/');
}

/**
 * Extracts exactly `members` (names as in the archive, e.g. 'cifar-10-batches-bin/test_batch.bin') from the
 * .tar.gz `archive` into the existing directory `into`; `optional` members are extracted when present.
 * Throws InputError naming the archive for anything unsafe, malformed or missing. Files are fsynced so a
 * later atomic rename of the folder publishes complete data.
 */
export async function extractTarGz(archive: string, members: readonly string[], into: string, optional: readonly string[] = []): Promise<void> {
  const wanted = new Set([...members, ...optional]);
  const found = new Set<string>();
  const gunzip = createGunzip();
  const source = createReadStream(archive);
  source.on('error', (e) => gunzip.destroy(e));
  const stream = source.pipe(gunzip);
  const reader = new ChunkReader(stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>);
  const bad = (what: string) => new InputError(`${archive}: ${what}`);
  try {
    let paxPath: string | undefined;
    let paxSize: number | undefined;
    let longName: string | undefined;
    let zeroBlocks = 0;
    for (;;) {
      const at = reader.offset;
      const h = await reader.exact(BLOCK);
      if (h === null) {
        // Some writers omit the two zero blocks; ending exactly on a block boundary is still a whole archive.
        if (reader.buffered() > 0) throw bad(`truncated tar data at byte ${reader.offset}`);
        break;
      }
      if (h.every((v) => v === 0)) {
        if (++zeroBlocks === 2) break;
        continue;
      }
      zeroBlocks = 0;
      if (!checksumOk(h)) throw bad(`not a tar archive or corrupt (bad header checksum at byte ${at})`);
      const type = String.fromCharCode(h[156]!);
      let size = numField(h, 124, 12);
      if (!Number.isSafeInteger(size) || size < 0) throw bad(`bad size field in the header at byte ${at}`);
      const padded = Math.ceil(size / BLOCK) * BLOCK;

      // Meta entries describe the next header.
      if (type === 'x' || type === 'g' || type === 'L') {
        if (size > 1 << 20) throw bad(`oversized ${type} header at byte ${at}`);
        const data = await reader.exact(padded);
        if (data === null) throw bad(`truncated tar data at byte ${reader.offset}`);
        const body = data.subarray(0, size);
        if (type === 'L') longName = cString(body, 0, body.length);
        else if (type === 'x') {
          const pax = parsePax(body);
          paxPath = pax.get('path') ?? paxPath;
          const s = pax.get('size');
          if (s !== undefined) paxSize = Number(s);
        }
        continue;
      }

      const magic = h.subarray(257, 262).toString('ascii');
      const prefix = magic === 'ustar' ? cString(h, 345, 155) : '';
      const headerName = prefix ? `${prefix}/${cString(h, 0, 100)}` : cString(h, 0, 100);
      const rawName = paxPath ?? longName ?? headerName;
      if (paxSize !== undefined) size = paxSize;
      paxPath = paxSize = longName = undefined;
      if (!Number.isSafeInteger(size) || size < 0) throw bad(`bad pax size for member '${rawName}'`);
      const dataBytes = Math.ceil(size / BLOCK) * BLOCK;

      const name = safeMemberName(rawName);
      if (name === null) throw bad(`member '${rawName}' has an unsafe path (absolute or containing '..'); refusing to extract`);
      if (type === '1' || type === '2' || type === 'K') {
        throw bad(`member '${rawName}' is a ${type === '2' ? 'symbolic' : 'hard'} link; refusing to extract`);
      }
      if (type === '5') {
        if (!(await reader.pipe(dataBytes, null))) throw bad(`truncated tar data at byte ${reader.offset}`);
        continue;
      }
      if (type !== '0' && type !== '\0' && type !== '7') {
        throw bad(`member '${rawName}' is not a regular file (tar type '${type}'); refusing to extract`);
      }
      if (!wanted.has(name)) {
        if (!(await reader.pipe(dataBytes, null))) throw bad(`truncated tar data at byte ${reader.offset}`);
        continue;
      }
      if (found.has(name)) throw bad(`member '${name}' appears twice`);
      found.add(name);
      const dest = join(into, name);
      await mkdir(dirname(dest), { recursive: true });
      const fh: FileHandle = await open(dest, 'wx');
      try {
        let written = 0;
        const ok = await reader.pipe(dataBytes, async (b) => {
          const keep = Math.min(b.length, size - written);
          if (keep > 0) await fh.write(b, 0, keep);
          written += b.length;
        });
        if (!ok) throw bad(`truncated tar data in member '${name}'`);
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
  } catch (e) {
    if (e instanceof InputError) throw e;
    const err = e as NodeJS.ErrnoException;
    if (typeof err.code === 'string' && err.code.startsWith('Z_')) throw bad(`not a valid gzip file (${err.message})`);
    throw e;
  } finally {
    stream.destroy();
    source.destroy();
  }
  const missing = members.filter((m) => !found.has(m));
  if (missing.length > 0) throw bad(`missing member${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
}
