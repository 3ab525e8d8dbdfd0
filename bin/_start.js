// The start-up every bin shares (ikl-train, ikl-eval, ikl-doctor, ikl-export, and any later one such as a launcher).
// Plain JavaScript, no dependency, so that it runs before anything else is loaded.
//
// API
//   start(name, entry): Promise<void>
//     name   the bin's name, used in messages ('ikl-train').
//     entry  the compiled command module, relative to the package root ('dist/src/cli/train.js'); it exports
//            main(argv). start() calls quietDefaults(), checks that the sources are built (else one line, exit 2),
//            calls watchParent(), then imports entry and awaits main(process.argv).
//   quietDefaults(argv = process.argv): void
//     TensorFlow's C++ log level 2 (warnings and errors only) unless TF_CPP_MIN_LOG_LEVEL is set or --verbose is
//     given. It must be set before the native library loads, which reads it once.
//   watchParent({ name, signal = 'SIGTERM', everyMs = 500, force } = {}): () => void (stops watching)
//     Takes the disappearance of the process that started this one as `signal` sent to this process, so that the
//     command's own handler runs (ikl-train: finish the step, write last/, exit 143). On by default only when an
//     npm client started the bin (npx, npm exec, npm run: npm_lifecycle_event is set): npm forwards SIGINT/SIGTERM
//     to the shell it runs the bin in, and a shell that does not exec its command (dash, /bin/sh on Debian and
//     Ubuntu) dies of SIGTERM without passing it on, leaving the bin orphaned; the repository's .npmrc makes npm
//     use bash, which execs the bin so that signals reach it directly. Off for a bin started from a shell, so
//     that `nohup ikl-train ... &` survives the logout of its shell. `force` true/false overrides the default
//     (IKL_WATCH_PARENT=1/0 does the same from the environment).
import { existsSync } from 'node:fs';

const ROOT = new URL('../', import.meta.url);

export function quietDefaults(argv = process.argv) {
  if (process.env.TF_CPP_MIN_LOG_LEVEL === undefined && !argv.includes('--verbose')) process.env.TF_CPP_MIN_LOG_LEVEL = '2';
}

export function watchParent({ name = 'ikl', signal = 'SIGTERM', everyMs = 500, force } = {}) {
  const env = process.env.IKL_WATCH_PARENT;
  const on = force ?? (env === '1' ? true : env === '0' ? false : process.env.npm_lifecycle_event !== undefined);
  if (!on) return () => {};
  const parent = process.ppid;
  const timer = setInterval(() => {
    // process.ppid is read from the OS each time: an orphan is adopted by init or a subreaper.
    if (process.ppid === parent) return;
    clearInterval(timer);
    process.stderr.write(`${name}: the process that started this one (pid ${parent}) is gone; stopping as on ${signal}\n`);
    process.kill(process.pid, signal);
  }, everyMs);
  // The watch alone never keeps the process alive.
  timer.unref();
  return () => clearInterval(timer);
}

export async function start(name, entry) {
  quietDefaults();
  const url = new URL(entry, ROOT);
  if (!existsSync(url)) {
    process.stderr.write(`${name}: the TypeScript sources are not built yet: run \`npm run setup\` (or \`npm run build\`) first\n`);
    process.exit(2);
  }
  watchParent({ name });
  const { main } = await import(url.href);
  await main(process.argv);
}
