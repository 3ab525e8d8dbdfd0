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
