/**
 * `ikl-doctor`: diagnoses the environment (src/doctor.ts) and prints it on stdout. Exit 0 when usable as
 * requested, 2 with the fix when the native backend or a requested GPU cannot be used.
 */
import { Command, Option } from 'commander';
import { EXIT } from '../errors.js';
import { runProgram } from './common.js';

interface DoctorFlags {
  backend?: string;
  json?: boolean;
  benchmark: boolean;
  verbose?: boolean;
  libDirs?: string;
}

async function doctorAction(flags: DoctorFlags): Promise<number> {
  const { parseBackendChoice } = await import('../backend.js');
  const choice = flags.backend === undefined ? undefined : parseBackendChoice(flags.backend);
  // TensorFlow's C++ INFO lines (which library it opened) are what --verbose is for here.
  if (flags.verbose) process.env.TF_CPP_MIN_LOG_LEVEL ??= '0';
  const { diagnose, formatDiagnosis } = await import('../doctor.js');
  const d = await diagnose({
    ...(choice ? { backend: choice } : {}),
    ...(flags.libDirs !== undefined ? { libDirs: flags.libDirs.split(':').filter(Boolean) } : {}),
    benchmarkSeconds: flags.benchmark ? 1 : 0,
  });
  process.stdout.write(flags.json ? `${JSON.stringify(d, null, 2)}\n` : formatDiagnosis(d));
  return d.usable ? EXIT.ok : EXIT.badInput;
}

export function buildProgram(run: (body: () => Promise<number>) => void): Command {
  return new Command('ikl-doctor')
    .description(
      'Diagnose the TensorFlow.js set-up: backend packages, TensorFlow version, devices, CUDA/cuDNN libraries, threads, a one-second convolution benchmark.',
    )
    .option('--backend <name>', 'auto|tensorflow|gpu|cpu: the backend to check (default $IKL_BACKEND or auto)')
    .option('--json', 'the diagnosis as JSON')
    .option('--no-benchmark', 'skip the one-second convolution benchmark')
    .option('--verbose', "show TensorFlow's own INFO lines (which libraries it opened) and stack traces")
    .addOption(new Option('--lib-dirs <dirs>', 'testing: look for the GPU libraries only in these folders (colon-separated)').hideHelp())
    .addHelpText('after', '\nExit codes: 0 usable as requested, 2 not usable (the fix is printed), 1 failure.\nExample: npx ikl-doctor --backend gpu')
    .allowExcessArguments(false)
    .action((flags: DoctorFlags) => run(() => doctorAction(flags)));
}

/** Entry point of bin/ikl-doctor.js. */
export async function main(argv: string[] = process.argv): Promise<void> {
  await runProgram('ikl-doctor', buildProgram, argv);
}
