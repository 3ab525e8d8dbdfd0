/**
 * What every command shares: error → exit-code mapping.
 * Commands stay thin: parse flags, call the library, map the outcome to an exit code.
 */
import { CommanderError, type Command } from 'commander';
import { EXIT, fileError, InputError, isFileSystemError } from '../errors.js';
import { packageVersion } from '../version.js';

/**
 * Runs a command body. InputError → its message on one line, exit 2 (nothing written is lost: the body only
 * writes atomically). Any other error → exit 1, the stack trace only with `verbose`.
 */
export async function runMain(name: string, body: () => Promise<number | void>, opts: { verbose?: boolean } = {}): Promise<never> {
  let code: number;
  try {
    code = (await body()) ?? EXIT.ok;
  } catch (caught) {
    // A file error that no caller turned into a message naming the user's file: still bad input, with its path.
    // Temporary names (x.tmp, x.tmp-<pid>) are shown as the file they were to become.
    const e =
      isFileSystemError(caught) && !(caught instanceof InputError)
        ? fileError((caught.path ?? 'a file').replace(/\.tmp(-\d+)?$/, ''), caught, caught.syscall ?? 'access')
        : caught;
    if (e instanceof InputError) {
      process.stderr.write(`${name}: ${e.message.replace(/\s*\n\s*/g, ' ')}\n`);
      code = EXIT.badInput;
    } else {
      const err = e as Error;
      process.stderr.write(`${name}: error: ${err?.message ?? String(e)}\n`);
      if (opts.verbose || process.argv.includes('--verbose')) process.stderr.write(`${err?.stack ?? ''}\n`);
      else process.stderr.write(`${name}: (run with --verbose for the stack trace)\n`);
      code = EXIT.failure;
    }
  }
  // Let pino's synchronous destination and pending stdout writes flush before exiting.
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit(code);
}

/**
 * The entry point of every bin: builds the commander program with `runMain` as its action runner and parses argv.
 * Commander's own errors (unknown flag, missing value) are bad input: one line, exit 2; help and --version exit 0.
 */
export async function runProgram(name: string, build: (run: (body: () => Promise<number | void>) => void) => Command, argv: string[]): Promise<void> {
  let pending: Promise<never> | undefined;
  const program = build((body) => {
    pending = runMain(name, body);
  });
  const configure = (c: Command): void => {
    c.exitOverride();
    c.configureOutput({ writeErr: () => {} });
    c.commands.forEach(configure);
  };
  program.version(packageVersion(), '-V, --version', 'print the version of ikl-at and exit');
  configure(program);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version') process.exit(EXIT.ok);
      process.stderr.write(`${name}: ${e.message.replace(/^error:\s*/, '')}\n`);
      process.exit(EXIT.badInput);
    }
    throw e;
  }
  if (pending) await pending;
}
