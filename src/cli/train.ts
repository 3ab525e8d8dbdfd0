/**
 * `ikl-train`: flags → resolved config → train(config) → exit code.
 * Exit 0 done, 2 bad input (one line), 1 failure, 130/143 stopped by SIGINT/SIGTERM after writing last/.
 * tfjs is imported only inside the action, after the config is known to be valid, so `--help`,
 * `--print-config`, `--schema` and config errors are instant.
 */
import { existsSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Command } from 'commander';
import { BACKEND_NAMES, LOG_FORMATS, configHash, configToYaml, jsonSchemaText, resolveConfig, type TrainConfig } from '../config/index.js';
import { EXIT, InputError } from '../errors.js';
import { oneOf } from '../input.js';
import { runProgram } from './common.js';
import type { StepInfo } from '../train/trainer.js';

/** The copy of the log in the run directory. */
export const RUN_LOG = 'train.log';

export interface TrainFlags {
  config?: string;
  set: string[];
  initFrom?: string;
  tensorboard?: string;
  printConfig?: boolean;
  schema?: boolean;
  /** true: resume the run directory; a path: a run directory or a checkpoint directory. */
  resume?: boolean | string;
  runDir?: string;
  backend?: string;
  logFormat?: string;
  progress: boolean;
  verbose?: boolean;
  /** Shortcuts of --set keys (SHORTCUTS). */
  dataDir?: string;
  epochs?: string;
  lr?: string;
  batchSize?: string;
  seed?: string;
}

/**
 * Flags that are shorthand for one config key each, as in timm's train.py: `--lr 0.1` = `--set optimizer.lr=0.1`.
 * They are --set assignments (validated, hashed and reported as such); with a --set of the same key, refused.
 */
export const SHORTCUTS = [
  { flag: '--data-dir', field: 'dataDir', key: 'data.dataDir', text: true },
  { flag: '--epochs', field: 'epochs', key: 'schedule.epochs', text: false },
  { flag: '--lr', field: 'lr', key: 'optimizer.lr', text: false },
  { flag: '--batch-size', field: 'batchSize', key: 'data.batchSize', text: false },
  { flag: '--seed', field: 'seed', key: 'run.seed', text: false },
] as const;

/** The --set assignments of the shortcut flags given, and how each was typed (for error messages). */
export function shortcutSets(flags: TrainFlags): string[] & { typed?: Map<string, string> } {
  const sets: string[] & { typed?: Map<string, string> } = [];
  sets.typed = new Map();
  for (const s of SHORTCUTS) {
    const value = flags[s.field];
    if (value === undefined) continue;
    if (flags.set.some((a) => a.split('=')[0]!.trim() === s.key)) throw new InputError(`${s.flag}: is --set ${s.key}, which is also given; give one of them`);
    // A path is a string whatever it looks like (a folder named 2024); numbers are read as YAML, as --set does.
    const assignment = `${s.key}=${s.text ? JSON.stringify(value) : value}`;
    sets.push(assignment);
    sets.typed.set(`--set ${assignment}`, `${s.flag} ${value}`);
  }
  return sets;
}

const EXAMPLES = `
Examples:
  $ ikl-train --config configs/quickstart.yaml                   # a few minutes on CPU, synthetic data
  $ ikl-train --config configs/kd/quick-teacher.yaml && ikl-train --config configs/kd/quick.yaml  # distillation
  $ ikl-train --config configs/cifar10-ikl-at.yaml --backend gpu # the published CIFAR-10 run
  $ ikl-train --config configs/cifar10-ikl-at.yaml --set attack.steps=10 --set optimizer.lr=0.1 --print-config
  $ ikl-train --resume checkpoints/cifar10-ikl-at                # continue after a crash or Ctrl-C
  $ ikl-train --config configs/cifar100-ikl-at.yaml --set run.seed=1 --run-dir runs/c100-s1
  $ ikl-eval --checkpoint checkpoints/cifar10-ikl-at/wa --attack autoattack > aa.json

The run directory (<run.outDir>/<run.name>, or --run-dir) receives config.resolved.yaml, metrics.jsonl, curves.svg
and the checkpoints last/ (resume point), best/ and wa/ (weight average: the one to evaluate).
--set takes YAML values: --set schedule.milestones=[75,90] --set attack.stepSize={absolute: 0.007} --set attack.epsilon=8/255
Every key, its meaning and default: ikl-train --schema, or configs/schema.json.
Ctrl-C (SIGINT) or SIGTERM: the current step finishes, last/ is written, exit 130/143; a second Ctrl-C exits at once.
Exit codes: 0 done, 2 bad input (one-line message), 1 failure, 130/143 interrupted (resumable).`;

/** What the flags say to run: the config, the run directory and what to resume. */
export interface TrainPlan {
  config: TrainConfig;
  runDir: string;
  resume: boolean | string;
  /** Where the config came from, for the log. */
  configSource: string;
}

/**
 * Flags → plan, without touching tfjs. `--resume <dir>` accepts a run directory (resumes its last/) or a
 * checkpoint directory (holds checkpoint.json). Without --config, a resumed run takes its own config:
 * <runDir>/config.resolved.yaml, or the config stored in the checkpoint.
 */
export async function planTraining(flags: TrainFlags): Promise<TrainPlan> {
  const shortcuts = shortcutSets(flags);
  try {
    return await planWith(flags, [...shortcuts, ...flags.set]);
  } catch (e) {
    // Errors name a shortcut's assignment as --set key=value: say it as the user typed it.
    if (!(e instanceof InputError)) throw e;
    let message = e.message;
    for (const [set, typed] of shortcuts.typed!) message = message.split(set).join(typed);
    throw message === e.message ? e : new InputError(message);
  }
}

async function planWith(flags: TrainFlags, sets: string[]): Promise<TrainPlan> {
  // --init-from is shorthand for --set model.initFrom=PATH (so it is part of the config and its hash).
  if (flags.initFrom !== undefined) sets.push(`model.initFrom=${JSON.stringify(flags.initFrom)}`);
  // --tensorboard DIR is shorthand for --set log.tensorboard=DIR (a presentation key: not in the hash).
  if (flags.tensorboard !== undefined) sets.push(`log.tensorboard=${JSON.stringify(flags.tensorboard)}`);
  let file = flags.config;
  let runDir = flags.runDir;
  let resume: boolean | string = false;
  let embedded: { config: unknown; source: string } | undefined;

  if (flags.resume !== undefined && flags.resume !== false) {
    if (flags.resume === true) {
      resume = true;
    } else if (existsSync(join(flags.resume, 'checkpoint.json'))) {
      resume = flags.resume;
      if (file === undefined) embedded = { config: await readCheckpointConfig(flags.resume), source: join(flags.resume, 'checkpoint.json') };
    } else if (existsSync(flags.resume)) {
      if (runDir !== undefined && runDir !== flags.resume) {
        throw new InputError(`--resume ${flags.resume}: is a run directory but --run-dir says ${runDir}; give one of them`);
      }
      runDir = flags.resume;
      resume = true;
    } else {
      throw new InputError(`--resume ${flags.resume}: no such run or checkpoint directory`);
    }
    if (file === undefined && embedded === undefined && runDir !== undefined) {
      const saved = join(runDir, 'config.resolved.yaml');
      if (existsSync(saved)) file = saved;
    }
  }

  let config: TrainConfig;
  let configSource: string;
  if (embedded) {
    // --set still applies on top; the trainer refuses to resume with a changed hash, which is the point.
    config = resolveConfig({ base: { value: embedded.config, source: embedded.source }, sets });
    configSource = embedded.source;
  } else {
    config = resolveConfig({ file, sets });
    configSource = file ?? 'defaults';
    // Bare `--resume`: the run directory comes from the config; if it holds its resolved config, use that.
    if (resume === true && file === undefined && runDir === undefined) {
      const saved = join(config.run.outDir, config.run.name, 'config.resolved.yaml');
      if (existsSync(saved)) {
        config = resolveConfig({ file: saved, sets });
        configSource = saved;
      }
    }
  }

  // Presentation and placement flags: they do not change what is trained (nor the config hash).
  if (flags.backend !== undefined) {
    config.run.backend = oneOf(BACKEND_NAMES, flags.backend, '--backend');
  }
  if (flags.logFormat !== undefined) {
    config.run.logFormat = oneOf(LOG_FORMATS, flags.logFormat, '--log-format');
  }
  if (!flags.progress) config.run.progress = false;

  return { config, runDir: runDir ?? join(config.run.outDir, config.run.name), resume, configSource };
}

/** The config stored in a checkpoint, read by the checksum-verified reader (which loads tfjs: only on this path). */
async function readCheckpointConfig(dir: string): Promise<unknown> {
  const { verifyCheckpoint } = await import('../checkpoint/index.js');
  const { meta } = await verifyCheckpoint(dir);
  if (meta.config === undefined) throw new InputError(`${join(dir, 'checkpoint.json')}: holds no config; pass --config`);
  return meta.config;
}

async function trainAction(flags: TrainFlags): Promise<number> {
  if (flags.schema) {
    process.stdout.write(jsonSchemaText());
    return EXIT.ok;
  }
  const plan = await planTraining(flags);
  const { config } = plan;
  if (flags.printConfig) {
    process.stdout.write(
      configToYaml(config, `ikl-train resolved config (hash ${configHash(config)})\nfrom ${plan.configSource}; run directory ${plan.runDir}`),
    );
    return EXIT.ok;
  }

  // Installed before the (slow) backend load so that an early Ctrl-C is honoured too. The first SIGINT/SIGTERM
  // asks the trainer to stop after the step in progress (it writes last/ and returns); the handlers are then
  // removed, so a second signal takes the signal's default action: the process ends at once, even in the middle
  // of a (synchronous) tfjs step or of a checkpoint write, whose atomic protocol keeps the previous one intact.
  const signal = { stopRequested: false };
  let received: 'SIGINT' | 'SIGTERM' | undefined;
  const handlers = { SIGINT: () => onSignal('SIGINT'), SIGTERM: () => onSignal('SIGTERM') };
  const onSignal = (name: 'SIGINT' | 'SIGTERM'): void => {
    received = name;
    signal.stopRequested = true;
    process.removeListener('SIGINT', handlers.SIGINT);
    process.removeListener('SIGTERM', handlers.SIGTERM);
    process.stderr.write(`ikl-train: ${name}: finishing the current step and writing last/ (again to exit at once, keeping the previous checkpoint)\n`);
  };
  process.on('SIGINT', handlers.SIGINT);
  process.on('SIGTERM', handlers.SIGTERM);

  const { createLogger } = await import('../log.js');
  // Data parallelism (TF_CONFIG or srun): task 0 logs, the other tasks only warn (they compute the same figures).
  const { clusterFromEnv, narrowGpusForSlurmTask } = await import('../collective/cluster.js');
  const rank = clusterFromEnv()?.rank ?? 0;
  narrowGpusForSlurmTask();
  // A copy of every line in the run directory (NDJSON, appended across resumes), whatever stderr shows: task 0's.
  const created = firstMissingDir(plan.runDir);
  const logFile = join(plan.runDir, RUN_LOG);
  const log = createLogger({
    format: config.run.logFormat,
    level: flags.verbose ? 'debug' : rank > 0 ? 'warn' : undefined,
    name: 'ikl-train',
    ...(rank === 0 ? { file: logFile } : {}),
  });
  const { initBackend, logBackend } = await import('../backend.js');
  // run.backend 'auto' leaves the choice to $IKL_BACKEND (then auto-detection).
  // TensorFlow's C++ INFO lines only with --verbose (src/backend.ts hides them otherwise).
  if (flags.verbose) process.env.TF_CPP_MIN_LOG_LEVEL ??= '0';
  const backend = await initBackend(config.run.backend === 'auto' ? undefined : config.run.backend);
  logBackend(log, backend);
  log.info({ runDir: plan.runDir, config: plan.configSource, hash: configHash(config).slice(0, 12), resume: plan.resume }, 'training');
  if (signal.stopRequested) return received === 'SIGTERM' ? EXIT.sigterm : EXIT.sigint;
  const { train } = await import('../train/index.js');
  const { createCollective, collectiveTimeoutFromEnv } = await import('../collective/index.js');
  const collective = createCollective({ timeoutSeconds: collectiveTimeoutFromEnv() });
  if (collective.size > 1) log.info({ tasks: collective.size, rank: collective.rank }, 'data-parallel run (TensorFlow collective ops)');
  const bar = config.run.progress && process.stderr.isTTY === true && rank === 0 ? await epochBar(config.schedule.epochs) : undefined;
  let result;
  try {
    result = await train(config, { runDir: plan.runDir, resume: plan.resume, logger: log, signal, onStep: bar?.onStep, collective });
  } catch (e) {
    // A run that failed before writing anything (bad data dir, a refused resume...) leaves no folder behind: the
    // error is on stderr, and the log copy of a folder this run created goes with it.
    if (created !== undefined && existsSync(plan.runDir) && readdirSync(plan.runDir).every((f) => f === RUN_LOG)) rmSync(logFile, { force: true });
    if (created !== undefined) removeEmptyDirs(plan.runDir, created);
    throw e;
  } finally {
    bar?.stop();
  }
  if (result.alreadyComplete) {
    process.stderr.write(
      `ikl-train: ${plan.runDir} already finished its ${config.schedule.epochs} epochs; nothing to resume (evaluate it: ikl-eval --checkpoint ${join(plan.runDir, existsSync(join(plan.runDir, 'wa')) ? 'wa' : 'last')} --attack autoattack)\n`,
    );
    return EXIT.ok;
  }
  if (result.stopped) {
    log.info({ runDir: plan.runDir, epochs: result.epochs, steps: result.steps }, `stopped; continue with: ikl-train --resume ${plan.runDir}`);
    return received === 'SIGTERM' ? EXIT.sigterm : EXIT.sigint;
  }
  log.info({ runDir: plan.runDir, epochs: result.epochs, steps: result.steps, last: result.metrics.at(-1) }, 'done');
  return EXIT.ok;
}

/** The outermost folder of `dir` that does not exist yet (what a run would create), or undefined. */
function firstMissingDir(dir: string): string | undefined {
  let missing: string | undefined;
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) {
    missing = d;
    if (dirname(d) === d) break;
  }
  return missing;
}

/** Removes `dir` and its parents up to `top`, each only if empty (rmdir refuses a non-empty folder). */
function removeEmptyDirs(dir: string, top: string): void {
  for (let d = resolve(dir); ; d = dirname(d)) {
    try {
      rmdirSync(d);
    } catch {
      return;
    }
    if (d === top || dirname(d) === d) return;
  }
}

/** A progress bar per epoch on stderr, fed by the trainer's step hook. */
async function epochBar(epochs: number): Promise<{ onStep: (info: StepInfo) => void; stop: () => void }> {
  const { default: cliProgress } = await import('cli-progress');
  let bar: InstanceType<typeof cliProgress.SingleBar> | undefined;
  let epoch = 0;
  return {
    onStep: (info) => {
      if (info.epoch !== epoch || !bar) {
        bar?.stop();
        epoch = info.epoch;
        bar = new cliProgress.SingleBar(
          { stream: process.stderr, format: `epoch ${epoch}/${epochs} [{bar}] {value}/{total} | loss {loss} | {eta_formatted} left` },
          cliProgress.Presets.shades_classic,
        );
        bar.start(info.batches, info.batch, { loss: '-' });
      }
      bar!.update(info.batch + 1, { loss: info.stats.total.toFixed(4) });
      // Closed at the epoch's last batch, before the epoch-end evaluation logs its line.
      if (info.batch + 1 === info.batches) {
        bar!.stop();
        bar = undefined;
      }
    },
    stop: () => bar?.stop(),
  };
}

export function buildProgram(run: (body: () => Promise<number>) => void): Command {
  return new Command('ikl-train')
    .description(
      'Adversarial training (IKL-AT, TRADES, PGD-AT) and knowledge distillation (IKL-KD, KD, DKD) on TensorFlow.js from a config file, with resumable atomic checkpoints.',
    )
    .option('--config <file>', 'config file, YAML or JSON (see configs/); default: the built-in defaults (CIFAR-10 IKL-AT)')
    .option('--set <key=value>', 'override one config key (repeatable), e.g. --set attack.steps=10', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--print-config', 'print the resolved config as YAML and exit')
    .option('--schema', 'print the JSON Schema of config files and exit')
    .option('--resume [dir]', 'continue a run: its run directory (default: the configured one) or a checkpoint directory')
    .option(
      '--init-from <path>',
      'start from a checkpoint directory, a PyTorch .pt/.safetensors state_dict or robustbench:<name> (= --set model.initFrom=PATH)',
    )
    .option('--run-dir <dir>', 'run directory (default <run.outDir>/<run.name>)')
    .option(
      '--tensorboard <dir>',
      'write TensorBoard event files into <dir> (= --set log.tensorboard=DIR; log.tensorboard: true puts them in the run directory)',
    )
    .option('--data-dir <dir>', 'dataset directory (= --set data.dataDir=DIR)')
    .option('--epochs <n>', 'training epochs (= --set schedule.epochs=N)')
    .option('--lr <r>', 'base learning rate (= --set optimizer.lr=R)')
    .option('--batch-size <n>', 'training batch size (= --set data.batchSize=N)')
    .option('--seed <n>', 'seed of the run (= --set run.seed=N)')
    .option('--backend <name>', `${BACKEND_NAMES.join('|')} (default: run.backend, then $IKL_BACKEND, then auto)`)
    .option('--log-format <fmt>', `${LOG_FORMATS.join('|')} (logs on stderr)`)
    .option('--no-progress', 'no progress bar (it is only shown on a TTY anyway)')
    .option('--verbose', 'debug logs and stack traces')
    .addHelpText('after', EXAMPLES)
    .allowExcessArguments(false)
    .action((flags: TrainFlags) => run(() => trainAction(flags)));
}

/** Entry point of bin/ikl-train.js. */
export async function main(argv: string[] = process.argv): Promise<void> {
  await runProgram('ikl-train', buildProgram, argv);
}
