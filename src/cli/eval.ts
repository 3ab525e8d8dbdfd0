/**
 * `ikl-eval`: robustness evaluation of a checkpoint. Parses flags, calls src/eval, prints ONE JSON report on
 * stdout (logs and the progress bar go to stderr). Exit 0 success, 2 bad input, 1 failure.
 * tfjs is imported only inside the actions, so `--help` and flag errors are instant.
 */
import { existsSync, readFileSync } from 'node:fs';
import { Command } from 'commander';
import { EXIT, fileError, InputError } from '../errors.js';
import { runProgram } from './common.js';
import { EVAL_ATTACKS } from '../eval/types.js';
import { epsWarning, resolveEvalOptions, type RawEvalOptions } from '../eval/options.js';
import type { StageProgress } from '../eval/run.js';
import { assertStateWritable } from '../eval/state.js';
import { LOG_FORMATS } from '../choices.js';
import { oneOf } from '../input.js';

interface EvalFlags extends RawEvalOptions {
  state?: string;
  saveEvery?: string;
  backend?: string;
  logFormat?: string;
  progress: boolean;
  quiet?: boolean;
  verbose?: boolean;
  arch?: string;
  tensorboard?: string;
  model?: string;
}

const EXAMPLES = `
Examples:
  $ ikl-eval --checkpoint runs/ikl-wrn34/best --attack pgd                 # PGD-20, eps 8/255, 10,000 images
  $ ikl-eval --checkpoint runs/ikl-wrn34/best --attack autoattack --state aa.state.json > aa.json
  $ ikl-eval --checkpoint ckpt --attack autoattack --shard 0/4 > shard0.json   # one of 4 slices
  $ ikl-eval --checkpoint model.pt --dataset cifar10 --attack autoattack     # a PyTorch state_dict
  $ ikl-eval --model robustbench:Cui2023Decoupled_WRN-34-10 --dataset cifar10 --attack autoattack
  $ ikl-eval merge shard0.json shard1.json shard2.json shard3.json > aa.json
  $ scripts/eval-shards.sh 4 -- --checkpoint ckpt --attack autoattack       # one shard per GPU, then merge

  $ ikl-eval --checkpoint ckpt --attack autoattack --aa-version plus > aa-plus.json
  $ ikl-eval --checkpoint ckpt --attacks apgd-ce,apgd-dlr,fab --state custom.state.json > custom.json
  $ ikl-eval --checkpoint ckpt --protocol trades                           # TRADES' PGD-20 evaluation, as its tables

Defaults per attack: pgd/cw 20 steps of eps/4 (2/255 at eps 8/255) from a uniform random start; fgsm one step of
eps; apgd-ce/apgd-t/fab-t 100 iterations; square 5000 queries; autoattack the standard ensemble (APGD-CE, APGD-T,
FAB-T, Square on what is still robust), which takes no --steps/--step-size/--restarts. --aa-version plus: APGD-CE,
APGD-DLR (5 restarts each), FAB (5 restarts), Square, APGD-T, FAB-T (5 restarts); rand: APGD-CE and APGD-DLR with
the gradient averaged over 20 draws (randomised defences). --attacks: any of apgd-ce|apgd-dlr|apgd-t|fab|fab-t|square
in the order given, with the reference's custom-version settings (those of plus).
Exit codes: 0 success, 2 bad input (one-line message), 1 failure.`;

/**
 * Progress of an evaluation. On a terminal, a bar over every (batch, stage) with the stage and the robust
 * accuracy so far; otherwise one log line per stage of every batch with the robust accuracy so far, as
 * AutoAttack prints after each of its attacks.
 */
async function stageProgress(
  bar: boolean,
  log: { info(obj: object, msg: string): void },
): Promise<{ onProgress: (done: number, total: number) => void; onStageDone: (p: StageProgress) => void; stop: () => void }> {
  const pct = (k: number, n: number): string => (n === 0 ? '-' : `${((100 * k) / n).toFixed(2)}%`);
  // The batch the stage ran on, counted from 1 within the slice: the last complete one after its last stage.
  const current = (p: StageProgress): number => Math.min(p.batches, p.stage + 1 === p.stages ? p.batchesDone : p.batchesDone + 1);
  if (!bar) {
    return {
      onProgress: () => {},
      onStageDone: (p) =>
        log.info(
          { batch: current(p), batches: p.batches, stage: p.stageName, examples: p.examples, clean: p.clean, robust: p.robust, seconds: round(p.seconds) },
          `robust accuracy after ${p.stageName}: ${pct(p.robust, p.examples)} (${p.robust}/${p.examples}; clean ${pct(p.clean, p.examples)}), batch ${current(p)}/${p.batches}`,
        ),
      stop: () => {},
    };
  }
  const { default: cliProgress } = await import('cli-progress');
  const b = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: 'ikl-eval [{bar}] {value}/{total} batch·stages | batch {batch}/{batches} {stage} | robust {robust} | {eta_formatted} left',
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  let stages = 1;
  return {
    onProgress: (done, total) => {
      if (started) return;
      started = true;
      b.start(total, done, { batch: Math.min(total, done + 1), batches: total, stage: 'clean', robust: '-' });
    },
    onStageDone: (p) => {
      if (!started) return;
      if (p.stages !== stages) {
        // Units are (batch, stage) pairs: known once the first stage reports the number of stages.
        stages = p.stages;
        b.setTotal(p.batches * stages);
      }
      const inBatch = p.stage + 1 === p.stages ? 0 : p.stage + 1;
      b.update(p.batchesDone * stages + inBatch, {
        batch: current(p),
        batches: p.batches,
        stage: p.stageName,
        robust: `${pct(p.robust, p.examples)} of ${p.examples}`,
      });
    },
    stop: () => {
      if (started) b.stop();
    },
  };
}

function round(v: number): number {
  return Number(v.toPrecision(4));
}

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

async function evalAction(flags: EvalFlags): Promise<number> {
  // Everything the user can get wrong is checked before tfjs or any file is loaded.
  if (flags.model !== undefined) {
    if (flags.checkpoint !== undefined) throw new InputError('--model: give --model or --checkpoint, not both');
    if (!flags.model.startsWith('robustbench:'))
      throw new InputError(`--model ${flags.model}: expected robustbench:<name> (a file or directory goes to --checkpoint)`);
  }
  const partial = resolveEvalOptions({ ...flags, checkpoint: flags.checkpoint ?? flags.model });
  const logFormat = oneOf(LOG_FORMATS, flags.logFormat ?? 'auto', '--log-format');
  if (flags.state !== undefined) assertStateWritable(flags.state);
  const saveEverySeconds = flags.saveEvery === undefined ? undefined : Number(flags.saveEvery);
  if (saveEverySeconds !== undefined) {
    if (flags.saveEvery!.trim() === '' || !Number.isFinite(saveEverySeconds) || saveEverySeconds < 0) {
      throw new InputError(`--save-every: expected a number of seconds >= 0, got '${flags.saveEvery}'`);
    }
    if (flags.state === undefined) throw new InputError('--save-every: only means something with --state <file>');
  }
  // Paths too, before TensorFlow loads (seconds): a typo is answered at once.
  const warning = epsWarning(partial);
  if (warning !== undefined) process.stderr.write(`ikl-eval: warning: ${warning}\n`);
  // A RobustBench name is resolved (cache, download) by the library.
  if (flags.model === undefined && !existsSync(partial.checkpoint))
    throw new InputError(`--checkpoint ${partial.checkpoint}: no such checkpoint directory or weight file`);
  const { initBackend, logBackend, parseBackendChoice } = await import('../backend.js');
  const backendChoice = flags.backend === undefined ? undefined : parseBackendChoice(flags.backend);
  const { createLogger } = await import('../log.js');
  // --quiet: warnings and errors only, no progress.
  const log = createLogger({ format: logFormat, level: flags.verbose ? 'debug' : flags.quiet ? 'warn' : undefined, name: 'ikl-eval' });
  // TensorFlow's C++ INFO lines only with --verbose (src/backend.ts hides them otherwise).
  if (flags.verbose) process.env.TF_CPP_MIN_LOG_LEVEL ??= '0';
  const backend = await initBackend(backendChoice);
  logBackend(log, backend);
  log.info({ attack: partial.attack, checkpoint: partial.checkpoint, shard: partial.shard }, 'evaluation');
  const { runEval } = await import('../eval/run.js');

  const progress = flags.quiet ? undefined : await stageProgress(flags.progress && process.stderr.isTTY === true, log);
  let report;
  try {
    report = await runEval(partial, {
      stateFile: flags.state,
      arch: flags.arch,
      ...(saveEverySeconds !== undefined ? { saveEverySeconds } : {}),
      logger: log,
      backend,
      ...(progress ? { onProgress: progress.onProgress, onStageDone: progress.onStageDone } : {}),
    });
  } finally {
    progress?.stop();
  }
  if (report === null) throw new Error('ikl-eval: the evaluation stopped before its report');
  log.info({ clean_acc: report.clean_acc, robust_acc: report.robust_acc, validity: report.validity.line }, 'done');
  if (flags.tensorboard !== undefined) {
    const { writeReportEvents } = await import('../eval/tensorboard.js');
    log.info({ tensorboard: writeReportEvents(report, flags.tensorboard) }, 'TensorBoard event file');
  }
  printJson(report);
  return EXIT.ok;
}

async function mergeAction(files: string[]): Promise<number> {
  const { mergeReports } = await import('../eval/report.js');
  const reports = files.map((f) => {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (e) {
      throw fileError(`merge: ${f}`, e, 'read');
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new InputError(`merge: ${f} is not JSON (expected an ikl-eval report)`);
    }
  });
  printJson(mergeReports(reports as never[], files));
  return EXIT.ok;
}

export function buildProgram(run: (body: () => Promise<number>) => void): Command {
  const program = new Command('ikl-eval')
    .description('Robust accuracy of a checkpoint under PGD, FGSM, CW, APGD, FAB, Square or AutoAttack. Prints one JSON report on stdout.')
    .option('--checkpoint <path>', 'checkpoint directory, or a PyTorch .pt/.pth or .safetensors state_dict')
    .option('--model <name>', 'robustbench:<name>: a RobustBench CIFAR model by name (cache $IKL_CACHE, else downloaded)')
    .option('--arch <name>', 'architecture of a PyTorch file (default: recognised from its keys)')
    .option('--attack <name>', `${EVAL_ATTACKS.join('|')} (AutoAttack's other stages, apgd-dlr and fab, through --attacks)`)
    .option('--eps <r>', 'perturbation radius, a fraction or decimal (default 8/255; 12 for --norm l1)')
    .option('--norm <norm>', 'linf|l2|l1, also spelt Linf|L2|L1 (default linf; l1: the AutoAttack stages only)')
    .option('--steps <n>', 'iterations (queries for square); default per attack, see below')
    .option('--step-size <a>', 'absolute step size of pgd/cw (default eps/4)')
    .option('--restarts <n>', 'random restarts of pgd/cw (default 1)')
    .option('--n-examples <n>', 'evaluate the first n test examples (default 10000 or the whole test set)')
    .option('--batch-size <n>', 'examples per batch (default 200)')
    .option('--dataset <name>', "cifar10|cifar100|synthetic (default: the checkpoint's dataset)")
    .option('--data-dir <dir>', "dataset directory (default: the checkpoint's data.dataDir, else data)")
    .option('--seed <n>', 'seed of every random choice (default 0)')
    .option('--aa-version <v>', 'standard|plus|rand: the AutoAttack version of --attack autoattack (default standard)')
    .option('--attacks <list>', 'custom AutoAttack stage list, comma-separated: apgd-ce|apgd-dlr|apgd-t|fab|fab-t|square')
    .option(
      '--protocol <name>',
      "default|trades: trades = TRADES' PGD-20 evaluation exactly (eps 0.031, 20 steps of 0.003, unclamped uniform start, every point counted)",
    )
    .option('--state <file>', 'resumable state file: a killed run started again continues where it stopped')
    .option(
      '--save-every <seconds>',
      'with --state: write it at most this often inside a batch, within attack stages too (default 30; 0 = after every restart/target)',
    )
    .option('--shard <i/n>', 'evaluate slice i of n contiguous slices of the first n-examples (merge with `ikl-eval merge`)')
    .option('--backend <name>', 'auto|tensorflow|gpu|cpu (default $IKL_BACKEND or auto)')
    .option('--log-format <fmt>', 'auto|json|pretty (logs on stderr)')
    .option('--tensorboard <dir>', 'also write the accuracy after each stage as TensorBoard scalars into <dir>')
    .option('--no-progress', 'no progress bar: one log line per stage instead (the bar is only shown on a TTY anyway)')
    .option('--quiet', 'no progress and no log lines but warnings and errors (the JSON report is still printed)')
    .option('--verbose', 'debug logs and stack traces')
    .addHelpText('after', EXAMPLES)
    .allowExcessArguments(false)
    .action((flags: EvalFlags) => run(() => evalAction(flags)));
  program
    .command('merge')
    .description('merge shard reports (same options, disjoint slices covering all examples) into the full report')
    .argument('<reports...>', 'shard report files (JSON)')
    .action((files: string[]) => run(() => mergeAction(files)));
  return program;
}

/** Entry point of bin/ikl-eval.js. */
export async function main(argv: string[] = process.argv): Promise<void> {
  await runProgram('ikl-eval', buildProgram, argv);
}
