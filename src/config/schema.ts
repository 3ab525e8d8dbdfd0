/**
 * The training configuration. This schema is its documentation: every field says what it is and what it
 * defaults to, and configs/schema.json (editor completion) is generated from it. The defaults are the
 * published CIFAR-10 IKL-AT recipe (WRN-34-10, alpha 3, beta 20, T 4, AWP, weight averaging); the presets
 * in configs/ override what differs.
 *
 * Objects are strict: a misspelt key is an error, never a silently ignored setting.
 */
import { z } from 'zod';
import { MODEL_ARCHS_HELP, isModelArch, type ModelArch } from '../models/types.js';
import { AUGMENTATIONS, DATASETS, VAL_SPLITS } from '../data/types.js';
import type { AttackLoss, PgdStart } from '../attacks/types.js';
import { BACKEND_CHOICES, LOG_FORMATS } from '../choices.js';
import { EPSILON_SCHEDULES, LR_SCHEDULES, OBJECTIVES } from '../train/names.js';
import { BATCH_SIZE_RULE, MAX_BATCH_SIZE, parseNumberText } from './number.js';

// ---------------------------------------------------------------------------------------------------------------
// Field helpers. Every message starts with "expected ..." so errors read "<file>: <key>: expected ..., got ...".

/** A number, also accepted as text such as '8/255' or '5e-4' (budgets are quoted as fractions of 255). */
function num<T extends z.ZodNumber>(check: T) {
  return z
    .union([z.number(), z.string()], { error: 'expected a number or a fraction like 8/255' })
    .transform((v, ctx) => {
      if (typeof v === 'number') return v;
      const n = parseNumberText(v);
      if (n === undefined) {
        ctx.issues.push({ code: 'custom', message: 'expected a number or a fraction like 8/255', input: v });
        return z.NEVER;
      }
      return n;
    })
    .pipe(check);
}

const finite = () => z.number({ error: 'expected a number' });
/** x > 0 */
const positive = () => num(finite().gt(0, { error: 'expected a positive number' }));
/** x >= 0 */
const nonNegative = () => num(finite().min(0, { error: 'expected a number >= 0' }));
/** 0 <= x <= 1 */
const unit = () => num(finite().min(0, { error: 'expected a number in [0, 1]' }).max(1, { error: 'expected a number in [0, 1]' }));
/** 0 <= x < 1 */
const unitOpen = () => num(finite().min(0, { error: 'expected a number in [0, 1)' }).lt(1, { error: 'expected a number in [0, 1)' }));
const int = () => z.number({ error: 'expected an integer' }).int({ error: 'expected an integer' });
const posInt = () => int().min(1, { error: 'expected a positive integer' });
const nonNegInt = () => int().min(0, { error: 'expected an integer >= 0' });
const seed = () =>
  int()
    .min(0, { error: 'expected an integer seed >= 0' })
    .max(2 ** 32 - 1, { error: 'expected an integer seed < 2^32' });
const bool = () => z.boolean({ error: 'expected true or false' });
/** A zoo architecture: a named one or a parametric WRN (`wrn-70-16-swish`), checked by the models' own parser. */
const arch = () =>
  z.string({ error: `expected one of ${MODEL_ARCHS_HELP}` }).refine(isModelArch, { error: `expected one of ${MODEL_ARCHS_HELP}` }) as unknown as z.ZodType<
    ModelArch,
    ModelArch
  >;

const oneOf = <const T extends readonly [string, ...string[]]>(values: T) => z.enum(values, { error: `expected one of ${values.join('|')}` });

/** A section: a strict object whose default is every field at its default. */
function section<S extends z.ZodRawShape>(shape: S, description: string) {
  const obj = z.strictObject(shape);
  // `.default()` returns its value without parsing, so the default is computed by parsing {} (all field defaults).
  // (The cast: TypeScript cannot see through the generic shape that parse's output is the default's type.)
  type Out = z.core.util.NoUndefined<z.output<typeof obj>>;
  return obj.default((() => obj.parse({})) as () => Out).describe(description);
}

// ---------------------------------------------------------------------------------------------------------------
// Sections.

// Owned by their modules; the config accepts them all, or (attack) the subset that training uses.
export { BACKEND_CHOICES as BACKEND_NAMES, LOG_FORMATS, OBJECTIVES, LR_SCHEDULES, EPSILON_SCHEDULES };
export const ATTACK_OBJECTIVES = ['kl', 'ikl', 'ce'] as const satisfies readonly AttackLoss[];
export const ATTACK_STARTS = ['trades', 'uniform'] as const satisfies readonly PgdStart[];
export const BEST_METRICS = ['robust', 'clean'] as const;
export const ATTACK_BN_MODES = ['inference', 'train'] as const;
export const WA_BN_STATISTICS = ['average', 'model'] as const;
export const PASS_ORDERS = ['adversarial-first', 'clean-first'] as const;

const run = section(
  {
    name: z
      .string({ error: 'expected a string' })
      .min(1, { error: 'expected a non-empty name' })
      // The run directory is <outDir>/<name>: a '..' or an absolute name would put it outside outDir.
      .refine((n) => !/^([\\/]|[A-Za-z]:)/.test(n) && !n.split(/[\\/]/).includes('..'), {
        error: "expected a name inside run.outDir (no '..' part, not an absolute path)",
      })
      .default('ikl-at')
      .describe('Run name; the run directory is <outDir>/<name> unless --run-dir is given.'),
    outDir: z
      .string({ error: 'expected a path' })
      .min(1, { error: 'expected a non-empty path' })
      .default('checkpoints')
      .describe('Directory that holds run directories.'),
    seed: seed().default(0).describe('Seed of everything random: weight init, shuffling (from seed, epoch), augmentation (seed, epoch, batch), attack starts.'),
    backend: oneOf(BACKEND_CHOICES)
      .default('auto')
      .describe('TensorFlow.js backend: auto (GPU if usable, else native CPU, else pure JS), tensorflow (native CPU), gpu, cpu (pure JS, very slow).'),
    logFormat: oneOf(LOG_FORMATS).default('auto').describe('Log format on stderr: json (NDJSON), pretty, or auto (pretty on a terminal).'),
    progress: bool().default(true).describe('Show a progress bar on a terminal.'),
  },
  'Where the run goes and how it reports.',
);

const synthetic = section(
  {
    nTrain: posInt().default(10_000).describe('Number of generated training images (validation split included).'),
    nTest: posInt().default(2_000).describe('Number of generated test images.'),
    seed: seed().default(0).describe('Seed of the generated data (independent of run.seed, so runs with different seeds see the same data).'),
  },
  'The generated dataset (data.dataset = synthetic): 32x32x3 images of 10 shape/texture classes made from a seed, for tests and the quickstart.',
);

const path = () => z.string({ error: 'expected a path' }).min(1, { error: 'expected a non-empty path' });

const extra = z
  .strictObject({
    file: path().optional().describe('One file of extra training images (same formats as files; files lists several parts).'),
    files: z
      .array(z.union([path(), z.strictObject({ image: path(), label: path() })], { error: 'expected a path or { image, label }' }), {
        error: 'expected a list of files',
      })
      .min(1, { error: 'expected at least one file' })
      .optional()
      .describe(
        'Parts of the extra (generated) training data, read from disk by position, never loaded whole: .npz as published by DM-Improves-AT (np.savez: image.npy uint8 Nx32x32x3, label.npy integers), a folder holding image.npy and label.npy, { image, label } naming two .npy files, or CIFAR binary records.',
      ),
    ratio: unitOpen()
      .default(0.7)
      .describe(
        'Fraction f of every training batch drawn from the extra data: floor(B·f) images, uniformly with replacement (0.7 in the generated-data recipes).',
      ),
  })
  .refine((e) => (e.file === undefined) !== (e.files === undefined), { error: 'expected exactly one of file or files' })
  .optional()
  .describe(
    'Extra training data mixed into every batch by the reference sampler (the generated-data runs); an epoch is then ceil(N/B) batches, N the training images before the validation split. Omitted: none.',
  );

const pair = section(
  {
    enabled: bool()
      .default(false)
      .describe(
        'Each training image gives two views: A augmented by data.augment, B by pair.augment; the attack and the clean CE run on all 2B, the robust loss is IKL(A) + gamma·IKL(B), the class-wise weights come from view A (objective ikl-at only).',
      ),
    augment: oneOf(AUGMENTATIONS)
      .default('autoaugment')
      .describe("Augmentation of view B (DKL's --aug autoaug: crop-flip + AutoAugment CIFAR-10 policy, no Cutout)."),
    gamma: nonNegative().default(0.3).describe("Weight of view B's robust term (DKL's --gamma, 0.3 in sh/train_dkl_cifar100_autoaug.sh)."),
  },
  "DKL's AutoAugment pair (train_dkl_cifar100.py --data CIFAR100V2 --aug autoaug).",
);

const data = section(
  {
    dataset: oneOf(DATASETS).default('cifar10').describe('Dataset: cifar10, cifar100, or synthetic (generated, no download).'),
    dataDir: z
      .string({ error: 'expected a path' })
      .min(1, { error: 'expected a non-empty path' })
      .default('data')
      .describe('Directory holding (or receiving) the dataset files.'),
    download: bool().default(true).describe('Download the dataset into dataDir when it is missing.'),
    synthetic,
    valSize: nonNegInt()
      .default(1000)
      .describe(
        'Training images held out as the validation set that picks the "best" checkpoint. 0: train on all; evaluation then uses test images, so best/ is for monitoring only.',
      ),
    valSplit: oneOf(VAL_SPLITS)
      .default('random')
      .describe(
        'Which training images are the validation set: random (a permutation from run.seed) or first (the first valSize, as DM-Improves-AT holds out the first 1024).',
      ),
    trainSubset: posInt().optional().describe('Train on only the first N training images (after the validation split). Omitted: all.'),
    extra,
    augment: z
      .union([bool(), oneOf(AUGMENTATIONS)], { error: `expected true, false or one of ${AUGMENTATIONS.join('|')}` })
      .default(true)
      .describe(
        'Training augmentation. true = crop-flip: random crop 32 with 4-pixel zero padding and random horizontal flip; false = none; ' +
          'crop-flip-rotate (+ RandomRotation 15, DM-Improves-AT CIFAR-100), cutout-16 (DKL) / cutout-18 (DM-Improves-AT), ' +
          'autoaugment (crop-flip + the CIFAR-10 AutoAugment policy as DKL and DM-Improves-AT run it, fill 128), autoaugment-cutout (+ Cutout 18, DM-Improves-AT), ' +
          "autoaugment-tv (torchvision's AutoAugment CIFAR10, fill 128), randaugment (torchvision RandAugment N 2 M 14, then crop-flip), " +
          "randaugment-dm (ildoonet's RandAugment 2, 14 as DM-Improves-AT installs it, then crop-flip), idbh-weak (IDBH cifar10-weak, Li & Spratling 2023).",
      ),
    pair,
    workers: nonNegInt()
      .max(16, { error: 'expected an integer in 0..16' })
      .default(1)
      .describe(
        'Worker threads reading and augmenting the next training batches during the step. 0: each batch is made in the main thread when needed. The batches are the same either way.',
      ),
    prefetch: posInt()
      .max(64, { error: 'expected an integer in 1..64' })
      .default(2)
      .describe('Training batches the workers make ahead (in flight at once; at least data.workers keeps every worker busy).'),
    batchSize: int().min(1, { error: BATCH_SIZE_RULE }).max(MAX_BATCH_SIZE, { error: BATCH_SIZE_RULE }).default(128).describe('Training batch size.'),
  },
  'Training data.',
);

const model = section(
  {
    arch: arch().default('wrn-34-10').describe(`Architecture from the model zoo: ${MODEL_ARCHS_HELP}; e.g. wrn-70-16-swish, wrn-34-20.`),
    numClasses: int()
      .min(2, { error: 'expected an integer >= 2' })
      .optional()
      .describe('Number of classes. Omitted: taken from the dataset (cifar10 10, cifar100 100, synthetic 10).'),
    initFrom: z
      .string({ error: 'expected a path' })
      .min(1, { error: 'expected a non-empty path' })
      .optional()
      .describe(
        'Start from these weights instead of the seeded initialisation: a checkpoint directory or a PyTorch .pt/.pth or .safetensors state_dict of the same arch and class count (official key names), or robustbench:<name> (a RobustBench model of the same arch, classes and input statistics; data.dataset picks its leaderboard). Ignored when resuming.',
      ),
    bnMomentum: unit()
      .optional()
      .describe(
        "BN running-statistics momentum in PyTorch's convention (running ← (1 − m)·running + m·batch). Omitted: the architecture's (0.1; 0.01 for the Swish WRNs, as DeepMind's and DM-Improves-AT's code).",
      ),
    bnWarmStart: bool()
      .default(false)
      .describe(
        "The first training step sets the BN running statistics to its batch statistics (PyTorch momentum 1 at step 0, DM-Improves-AT's watrain.py, 'same as Haiku'); bnMomentum from the second step.",
      ),
  },
  'The network.',
);

const objective = section(
  {
    type: oneOf(OBJECTIVES)
      .default('ikl-at')
      .describe(
        'Outer loss: ikl-at (CE + IKL), trades (CE + tradesBeta·KL), pgd-at (CE on adversarial examples, Madry), standard (clean CE, no attack); ' +
          "knowledge distillation from `teacher` with the settings of `distill`: ikl-kd (CE + IKL-KD, DKL's IKL_KD), kd (Hinton), dkd (decoupled KD).",
      ),
    alpha: nonNegative().default(3).describe('IKL: weight of the soft-label cross-entropy (the role of TRADES beta).'),
    beta: nonNegative().default(20).describe('IKL: weight of the weighted MSE of logit differences (wMSE).'),
    gamma: nonNegative().default(1).describe('GKL: power applied to the class-wise weights before the outer product (1 = IKL, 0 = uniform weights).'),
    temperature: positive().default(1).describe('Temperature of the soft-label cross-entropy (GKL); 1 in the published runs.'),
    tradesBeta: nonNegative().default(6).describe('TRADES: weight of KL(clean || adversarial).'),
    labelSmoothing: unitOpen()
      .default(0)
      .describe(
        'Label smoothing of the cross-entropy term: the clean CE of ikl-at, trades and standard (never the robust term), the adversarial CE of pgd-at. 0.1 in DM-Improves-AT (--ls).',
      ),
    passOrder: oneOf(PASS_ORDERS)
      .default('adversarial-first')
      .describe(
        "ikl-at and trades: order of the two train-mode passes, which decides whose batch the BN running statistics end with: adversarial-first (the DKL code) or clean-first (DM-Improves-AT's TRADES).",
      ),
  },
  'The training objective (outer minimisation).',
);

const teacher = section(
  {
    checkpoint: z
      .string({ error: 'expected a path' })
      .min(1, { error: 'expected a non-empty path' })
      .optional()
      .describe(
        'The teacher of ikl-kd, kd and dkd: a checkpoint directory written by ikl-train (e.g. runs/teacher/best), or a PyTorch weight file (.pt/.pth/.safetensors, read by the importer; give teacher.arch unless its keys identify it). Required by those objectives; other objectives do not load it (so a KD config trains its CE-only baseline with --set objective.type=standard).',
      ),
    arch: arch().optional().describe("The teacher's architecture, checked against the checkpoint's. Omitted: the checkpoint's."),
  },
  'The teacher of knowledge distillation: loaded once, run in inference mode (BN running statistics), never updated.',
);

const distill = section(
  {
    alpha: nonNegative().default(1).describe('ikl-kd: weight α of the soft cross-entropy at temperature T (IKL_KD.ALPHA); dkd: weight of TCKD (DKD.ALPHA).'),
    beta: nonNegative().default(8).describe('ikl-kd: weight β of the wMSE of logit differences (IKL_KD.BETA); dkd: weight of NCKD (DKD.BETA).'),
    temperature: positive().default(4).describe('T of the soft targets softmax(z/T) (IKL_KD.T, KD.TEMPERATURE, DKD.T; 4 on CIFAR-100).'),
    temperature2: positive().default(100).describe('ikl-kd: T2 of the wMSE weights softmax(z_teacher/T2), per sample or accumulated per class (IKL_KD.T2).'),
    classPrior: bool()
      .default(false)
      .describe(
        'ikl-kd: weight the wMSE by the class-wise prior (IKL_KD.GI): per epoch, the mean of softmax(z_teacher/T2) over each class; uniform in epoch 1. false: per-sample softmax(z_teacher/T2), as the CIFAR-100 configs.',
      ),
    warmupEpochs: posInt().default(20).describe('ikl-kd and dkd: the distillation term is scaled by min(epoch / warmupEpochs, 1) (IKL_KD.WARMUP, DKD.WARMUP).'),
    ceWeight: nonNegative()
      .optional()
      .describe('Weight of CE(student, y). Omitted: the reference default, 1 for ikl-kd and dkd (CE_WEIGHT), 0.1 for kd (KD.LOSS.CE_WEIGHT).'),
    kdWeight: nonNegative().default(0.9).describe('kd: weight of T²·KL(teacher ‖ student) (KD.LOSS.KD_WEIGHT).'),
    adversarial: bool()
      .default(false)
      .describe(
        'Adversarially robust distillation (RSLAD/ARD with the KD objective in place of KL): the student sees adversarial inputs crafted against itself by the training attack (`attack`), the teacher the clean input.',
      ),
  },
  'Knowledge distillation settings (objective.type ikl-kd, kd or dkd).',
);

const classWeights = section(
  {
    enabled: bool().default(true).describe('Use class-wise global weights (IKL). false: per-sample weights softmax(z)·softmax(z)ᵀ, as in DKL.'),
    temperature: positive().default(4).describe('T of softmax(z/T) accumulated per class to build the weights (4 in the published runs).'),
    momentum: unit().default(1).describe('P ← m·P_epoch + (1-m)·P_previous at the end of each epoch; 1 = no memory, as published.'),
  },
  'Class-wise global weights of the wMSE (IKL), recomputed from the clean predictions each epoch.',
);

const stepSize = z
  .union(
    [
      z.strictObject({ relative: positive().describe('Step size as a fraction of the current epsilon_t.') }),
      z.strictObject({ absolute: positive().describe('Step size in input units ([0, 1] pixels), e.g. 0.007 or 2/255.') }),
    ],
    { error: 'expected {relative: r} (step = r·epsilon_t) or {absolute: a}' },
  )
  .default({ relative: 0.5 })
  .describe('Attack step size: {relative: 0.5} (= epsilon_t/2, as released) or {absolute: 0.007} (original TRADES).');

const attack = section(
  {
    epsilon: unit()
      .default(8 / 255)
      .describe('L-inf radius of the training attack (at the last epoch when the schedule is linear).'),
    schedule: oneOf(EPSILON_SCHEDULES).default('linear').describe('Epsilon schedule: linear (epsilon_t = epsilon·e/E, as released) or constant.'),
    steps: posInt().default(5).describe('Attack iterations per batch.'),
    stepSize,
    start: oneOf(ATTACK_STARTS).default('trades').describe('Starting point: trades (x + 0.001·N(0, I)) or uniform (x + U(-epsilon_t, epsilon_t), Madry).'),
    objective: oneOf(ATTACK_OBJECTIVES)
      .default('kl')
      .describe(
        'Loss the attack ascends: kl (= soft CE, alpha 1 beta 0; CIFAR-10 runs), ikl (with alpha/beta below and the class weights; CIFAR-100 runs), ce.',
      ),
    bnMode: oneOf(ATTACK_BN_MODES)
      .default('inference')
      .describe(
        "BN during the attack: inference (running statistics, the IKL-AT reference) or train (the batch's statistics without updating the running ones: DM-Improves-AT's model.train() with track_running_stats off; its clean target softmax(f(x)) too).",
      ),
    alpha: nonNegative().default(1).describe('Soft-CE weight of the ikl attack objective.'),
    beta: nonNegative().default(1).describe('wMSE weight of the ikl attack objective.'),
  },
  'The inner maximisation that builds training adversarial examples (model in inference mode unless bnMode says train).',
);

const awp = section(
  {
    enabled: bool().default(true).describe('Adversarial weight perturbation (part of every published IKL-AT run).'),
    gamma: nonNegative().default(0.005).describe('Relative size of the weight perturbation.'),
    warmupEpoch: nonNegInt().default(10).describe('AWP starts at this epoch (1-based).'),
  },
  'Adversarial weight perturbation.',
);

const optimizer = section(
  {
    lr: positive().default(0.2).describe('Base learning rate of SGD.'),
    momentum: unitOpen().default(0.9).describe('SGD momentum.'),
    nesterov: bool().default(false).describe('Nesterov momentum.'),
    weightDecay: nonNegative().default(5e-4).describe('L2 weight decay on all parameters, PyTorch semantics (g += wd·θ before momentum).'),
    bnWeightDecay: bool()
      .default(true)
      .describe("false: no weight decay on the BN scales and offsets (DM-Improves-AT's parameter groups: its parameters named 'batchnorm')."),
  },
  'SGD.',
);

const schedule = section(
  {
    type: oneOf(LR_SCHEDULES)
      .default('cosine')
      .describe(
        "Learning-rate schedule per epoch: cosine (lr·½(1 + cos(π·e/(E+1)))), piecewise (× gamma at each milestone), constant, onecycle (PyTorch's OneCycleLR over the E epochs, stepped per epoch: DM-Improves-AT's 'cosinew'; settings in oneCycle).",
      ),
    epochs: posInt().default(200).describe('Training epochs E.'),
    warmupEpochs: nonNegInt()
      .default(0)
      .describe('Linear learning-rate warm-up W, as the reference: epochs e < W use lr·e/W, then the cosine starts at lr from e = W (over E − W + 1).'),
    milestones: z
      .array(posInt(), { error: 'expected a list of epochs' })
      .default([100, 150])
      .describe('piecewise: epochs after which the learning rate is multiplied by gamma.'),
    gamma: num(finite().gt(0, { error: 'expected a number in (0, 1]' }).max(1, { error: 'expected a number in (0, 1]' }))
      .default(0.1)
      .describe('piecewise: learning-rate factor at each milestone.'),
    oneCycle: section(
      {
        pctStart: unit()
          .default(0.025)
          .describe('Fraction of the epochs spent rising from lr/divFactor to lr (cos); the rest falls to lr/(divFactor·finalDivFactor).'),
        divFactor: num(finite().min(1, { error: 'expected a number >= 1' }))
          .default(25)
          .describe('The first epoch uses lr/divFactor.'),
        finalDivFactor: num(finite().min(1, { error: 'expected a number >= 1' }))
          .default(1e4)
          .describe('The last epoch uses lr/(divFactor·finalDivFactor) (lr/2.5e5 by default).'),
        cycleMomentum: bool()
          .default(true)
          .describe('Cycle the SGD momentum maxMomentum → baseMomentum → maxMomentum, inversely to the lr (replaces optimizer.momentum).'),
        baseMomentum: unitOpen().default(0.85).describe('Momentum at the lr peak.'),
        maxMomentum: unitOpen().default(0.95).describe('Momentum at the first and last epochs.'),
      },
      'schedule.type onecycle: PyTorch OneCycleLR (three_phase false, anneal cos) with total_steps = epochs, as DM-Improves-AT (train-wa.py, --scheduler cosinew).',
    ),
  },
  'Learning-rate schedule and run length.',
);

const weightAverage = section(
  {
    enabled: bool().default(true).describe('Keep an average of the weights (including BN statistics), saved as wa/.'),
    tau: unitOpen().default(0.9).describe('Per-epoch average: θ_WA ← tau·θ_WA + (1-tau)·θ_e.'),
    startEpoch: posInt().default(1).describe('θ_WA = θ_e at this epoch; averaging from the next one.'),
    perStep: bool().default(false).describe('Average after every step (EMA with stepTau) instead of every epoch.'),
    stepTau: unitOpen().default(0.999).describe('perStep: θ_WA ← stepTau·θ_WA + (1-stepTau)·θ.'),
    burnIn: unitOpen()
      .default(0)
      .describe('perStep: fraction of all training steps W during which the average is the current weights (decay 0); DM-Improves-AT: 0.025.'),
    dynamicDecay: bool()
      .default(false)
      .describe(
        "perStep: decay min(stepTau, (1 + t − W)/(10 + t − W)) after step t (DM-Improves-AT's ema_update), and the average starts from the initial weights.",
      ),
    bnStatistics: oneOf(WA_BN_STATISTICS)
      .default('average')
      .describe("BN running statistics of the average: average (averaged like the weights) or model (the live model's, as DM-Improves-AT's update_bn)."),
  },
  'Weight averaging (the published checkpoints are these averages).',
);

const evalSection = section(
  {
    everyEpochs: nonNegInt().default(1).describe('Evaluate on the validation set every N epochs (0: never).'),
    nExamples: posInt().default(1000).describe('Validation images evaluated.'),
    pgdSteps: posInt().default(10).describe('Steps of the PGD evaluation attack (CE, uniform start).'),
    pgdStepSize: positive()
      .default(2 / 255)
      .describe('Step size of the PGD evaluation attack.'),
    epsilon: unit()
      .default(8 / 255)
      .describe('L-inf radius of the evaluation attack.'),
  },
  'Periodic evaluation during training (clean and PGD accuracy).',
);

const log = section(
  {
    tensorboard: z
      .union([bool(), z.string({ error: 'expected true, false or a directory' }).min(1, { error: 'expected a non-empty directory' })], {
        error: 'expected true, false or a directory',
      })
      .default(false)
      .describe(
        "TensorBoard event files: true writes them into the run directory (beside metrics.jsonl), a path into that directory, false none. Per step: loss and its parts, lr, epsilon, images/s; per epoch: validation clean/PGD accuracy, worst class, and the weight average's.",
      ),
  },
  'Extra logs of a run (they do not change what it computes).',
);

const checkpoint = section(
  {
    everySteps: nonNegInt().default(0).describe('Also checkpoint last/ every N steps (0: only at the end of each epoch).'),
    keepBest: bool().default(true).describe('Keep best/: the checkpoint with the best validation metric.'),
    bestMetric: oneOf(BEST_METRICS).default('robust').describe('Metric that picks best/: robust (PGD accuracy) or clean accuracy.'),
  },
  'Checkpoints: last/ (resume), best/, wa/ (weight average) under the run directory.',
);

export const trainConfigSchema = z
  .strictObject({
    run,
    data,
    model,
    objective,
    teacher,
    distill,
    classWeights,
    attack,
    awp,
    optimizer,
    schedule,
    weightAverage,
    eval: evalSection,
    checkpoint,
    log,
  })
  .describe('ikl-train configuration. Every key is optional; omitted keys take the defaults shown.');

/** The config as parsed (numClasses may still be missing). */
export type ParsedTrainConfig = z.output<typeof trainConfigSchema>;
/** What a config file may contain. */
export type TrainConfigInput = z.input<typeof trainConfigSchema>;
/** The resolved config the trainer receives: every default filled in, numClasses known. */
export type TrainConfig = Omit<ParsedTrainConfig, 'model'> & {
  model: Omit<ParsedTrainConfig['model'], 'numClasses'> & { numClasses: number };
};

/** The JSON Schema of config files (input side: numbers may be written as '8/255'), with every default. */
export function trainConfigJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(trainConfigSchema, {
    io: 'input',
    // In input mode zod leaves out defaults of schemas that contain transforms (ours parse '8/255');
    // put every default back, it is the most useful part of the documentation.
    override: (ctx) => {
      const def = ctx.zodSchema._zod.def as { type: string; defaultValue?: unknown };
      if (def.type === 'default') ctx.jsonSchema.default = def.defaultValue;
    },
  }) as Record<string, unknown>;
  return { ...schema, $id: 'https://github.com/ikl-at/ikl-at/configs/schema.json', title: 'ikl-train config' };
}
