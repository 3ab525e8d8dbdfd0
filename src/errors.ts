/**
 * Bad input from the user (config, data files, checkpoints, flags). The CLI prints the message as one
 * line and exits with code 2; anything else is a failure (exit 1). Messages name the file or flag,
 * the field, and what was expected.
 */
export class InputError extends Error {
  override readonly name = 'InputError';
  constructor(message: string) {
    super(message);
  }
}

/** Exit codes shared by every command. */
export const EXIT = { ok: 0, failure: 1, badInput: 2, sigint: 130, sigterm: 143 } as const;

/** Plain words for the file-system error codes a user can meet and fix. */
const FS_REASONS: Record<string, string> = {
  ENOENT: 'no such file or folder',
  ENOTDIR: 'a part of the path is not a folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EISDIR: 'is a folder, expected a file',
  EMFILE: 'too many open files',
  EIO: 'input/output error',
};

/** True for an error of the file system (it has an errno code) that the user can act on. */
export function isFileSystemError(e: unknown): e is NodeJS.ErrnoException {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && code in FS_REASONS;
}

/**
 * A file-system error as bad input naming the file the user gave (`file`), not the temporary file the error
 * happened on: "<file>: cannot write (no space left on the device)". Anything else is returned unchanged.
 */
export function fileError(file: string, e: unknown, verb = 'write', hint = ''): unknown {
  if (!isFileSystemError(e)) return e;
  return new InputError(`${file}: cannot ${verb} (${FS_REASONS[e.code!]}${e.code === 'ENOENT' ? '' : `, ${e.code}`})${hint ? `; ${hint}` : ''}`);
}

/**
 * `s` safe to print inside a one-line message: control characters (C0, DEL, C1), line and paragraph separators and
 * the bidirectional overrides become `\xNN` / `\u{NNNN}` escapes, so text taken from a file cannot clear the
 * terminal, start a new line or disguise the message; longer than `max` characters is cut with '...'.
 */
export function printable(s: string, max = Infinity): string {
  const cut = s.length > max;
  // eslint-disable-next-line no-control-regex
  const escaped = (cut ? s.slice(0, max) : s).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
  return cut || escaped.length > max ? `${escaped.slice(0, max)}...` : escaped;
}
