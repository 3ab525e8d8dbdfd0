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
