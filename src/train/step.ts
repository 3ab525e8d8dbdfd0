/**
 * One training step and the objects it updates. Per batch (the order of the reference):
 *   1. x' = PGD on the current model in inference mode (budget ε_t, step size, start and loss from the config);
 *   2. from the AWP epoch on: proxy ascent step, perturb W += γ·v;
 *   3. objective on (x, y, x') with train-mode forward passes, gradients, NaN/Inf check, SGD step;
 *   4. AWP restore W −= γ·v;
 *   5. class weights: accumulate softmax(z/T) of the clean logits of the loss pass;
 *   6. optional per-step weight average.
 * The recipe of DM-Improves-AT adds: an attack with BN in train mode that leaves the running statistics alone
 * (attack.bnMode), BN momentum 1 on the first step (model.bnWarmStart), no weight decay on BN parameters, a
 * scheduled momentum, and a per-step EMA with a decay per step (ema.ts).
 *
 * Data parallelism (the reference's DataParallel): each task runs steps 1-3 on its shard of the global batch with
 * its own batch-norm statistics; the gradients (the model's and the AWP proxy's), weighted by the shard's share of
 * the batch, are summed over the tasks in one collective together with the step's figures, the class-wise weight
 * increments and task 0's BN running statistics (DataParallel keeps device 0's buffers), so every task applies the
 * same update to the same weights and holds the same class-weight sums.
 * With one process the collective is the identity and the share is 1.
 */
import * as tf from '@tensorflow/tfjs';
import { pgdPerturb } from '../attacks/pgd.js';
import type { ModelFn } from '../attacks/types.js';
import type { TrainConfig } from '../config/schema.js';
import { InputError } from '../errors.js';
import { SingleProcess, type Collective } from '../collective/index.js';
import { ClassWeights } from '../losses/index.js';
import { createModel, forward } from '../models/index.js';
import { inferenceModel } from '../models/inference.js';
import { Awp } from './awp.js';
import { batchStatisticsModel, bnParameterMask, restoreBnMomentum, setBnMomentum } from './batchNorm.js';
import { isKdObjective } from './names.js';
import { objective, disposeParts, type KdInputs, type ObjectiveParts, type TrainForward } from './objective.js';
import { teacherLogits, type Teacher } from './teacher.js';
import { Sgd } from './sgd.js';
import { WeightAverage } from './weightAverage.js';

/** The training loss became NaN or infinite: the run stops before the optimiser applies it. */
export class DivergenceError extends Error {
  override readonly name = 'DivergenceError';
}

/** Everything a step reads or updates. */
export interface Trainer {
  config: TrainConfig;
  model: tf.LayersModel;
  /** Trainable variables of `model`, in model.trainableWeights order (the optimiser's parameter order). */
  params: tf.Variable[];
  optimizer: Sgd;
  /** AWP and its proxy model (present when awp.enabled). */
  awp?: Awp;
  proxy?: tf.LayersModel;
  /** Class-wise global weights (present when the objective or the attack uses them). */
  classWeights?: ClassWeights;
  /** Weight average and the model instance that holds it for evaluation (present when weightAverage.enabled). */
  weightAverage?: WeightAverage;
  waModel?: tf.LayersModel;
  /** KD objectives: the frozen teacher (loadTeacher, set by train()) and the GI class prior over its logits. */
  teacher?: Teacher;
  kdPrior?: ClassWeights;
  /** The tasks this step's gradients and figures are summed over (SingleProcess: the identity). */
  collective: Collective;
}

export const trainForward =
  (model: tf.LayersModel): TrainForward =>
  (x) =>
    forward(model, x, { training: true });
export const inferenceFn =
  (model: tf.LayersModel): ModelFn =>
  (x) =>
    forward(model, x, { training: false });

/** Whether the class-wise weights are used anywhere (loss, AWP through the loss, attack). */
export function usesClassWeights(config: TrainConfig): boolean {
  return config.classWeights.enabled && (config.objective.type === 'ikl-at' || config.attack.objective === 'ikl');
}

/** The loss the training attack ascends. PGD-AT is Madry's recipe: always CE. */
export function attackLossOf(config: TrainConfig): 'kl' | 'ikl' | 'ce' {
  return config.objective.type === 'pgd-at' ? 'ce' : config.attack.objective;
}

/** Builds the model (seeded), optimiser, AWP proxy, class weights and weight average described by `config`. */
export function createTrainer(config: TrainConfig, collective: Collective = new SingleProcess()): Trainer {
  const kd = isKdObjective(config.objective.type);
  if (kd && config.distill.adversarial && config.attack.objective === 'ikl') {
    // The class weights of the ikl attack come from the student's clean logits, which adversarial KD never computes.
    throw new InputError("attack.objective: expected kl or ce with distill.adversarial (the ikl attack needs the student's clean logits), got ikl");
  }
  if (config.data.pair.enabled && config.objective.type !== 'ikl-at') {
    throw new InputError(`data.pair.enabled: the AutoAugment pair needs objective.type ikl-at, got ${config.objective.type}`);
  }
  if (attackLossOf(config) === 'ikl' && !config.classWeights.enabled) {
    throw new InputError("attack.objective: 'ikl' needs classWeights.enabled: true (the attack uses the class-wise weights)");
  }
  const spec = { arch: config.model.arch, numClasses: config.model.numClasses, seed: config.run.seed };
  const model = createModel(spec);
  // PyTorch momentum m is the layers' (Keras) 1 − m.
  if (config.model.bnMomentum !== undefined) setBnMomentum(model, 1 - config.model.bnMomentum);
  const params = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const optimizer = new Sgd(params, {
    momentum: config.optimizer.momentum,
    nesterov: config.optimizer.nesterov,
    weightDecay: config.optimizer.weightDecay,
    decay: config.optimizer.bnWeightDecay ? undefined : bnParameterMask(model).map((bn) => !bn),
  });
  const t: Trainer = { config, model, params, optimizer, collective };
  if (config.awp.enabled) {
    // Its initial weights are irrelevant: every AWP step first copies the model's weights into it.
    t.proxy = createModel(spec);
    // The reference builds the proxy optimiser with lr=args.lr, the base rate, which the schedule never changes.
    t.awp = new Awp(model, t.proxy, { gamma: config.awp.gamma, proxyLr: config.optimizer.lr });
  }
  if (usesClassWeights(config)) {
    t.classWeights = new ClassWeights(config.model.numClasses, {
      temperature: config.classWeights.temperature,
      momentum: config.classWeights.momentum,
    });
  }
  if (kd && config.objective.type === 'ikl-kd' && config.distill.classPrior) {
    // DKL's engine/trainer.py: per epoch, the mean of softmax(z_teacher/T2) over each class; uniform in epoch 1.
    t.kdPrior = new ClassWeights(config.model.numClasses, { temperature: config.distill.temperature2, momentum: 1 });
  }
  if (config.weightAverage.enabled) {
    // bnStatistics 'model': the non-trainable weights (BN running statistics) follow the live model.
    const copy = config.weightAverage.bnStatistics === 'model' ? model.weights.map((w) => !w.trainable) : undefined;
    t.weightAverage = new WeightAverage(config.weightAverage.perStep ? config.weightAverage.stepTau : config.weightAverage.tau, copy);
    t.waModel = createModel(spec);
    if (config.model.bnMomentum !== undefined) setBnMomentum(t.waModel, 1 - config.model.bnMomentum);
  }
  return t;
}

export function disposeTrainer(t: Trainer): void {
  t.optimizer.dispose();
  t.awp?.dispose();
  t.classWeights?.dispose();
  t.kdPrior?.dispose();
  t.teacher?.model.dispose();
  t.weightAverage?.dispose();
  t.model.dispose();
  t.proxy?.dispose();
  t.waModel?.dispose();
}

export interface StepParams {
  lr: number;
  /** SGD momentum of this step (a scheduled one); default optimizer.momentum. */
  momentum?: number;
  /** Decay of this step's weight-average update (ema.ts); default the average's τ. */
  averageDecay?: number;
  /** The loss pass sets the BN running statistics to the batch's (model.bnWarmStart, first step of a run). */
  bnWarmStart?: boolean;
  /** Attack budget ε_t of this epoch. */
  epsilon: number;
  stepSize: number;
  /** AWP active (epoch ≥ awp.warmupEpoch). */
  awp: boolean;
  /** Fold the weights into the per-step average after the update (weightAverage.perStep, from its start epoch). */
  averageWeights?: boolean;
  /** Seed of the attack's random start (a function of run seed, epoch and batch index). */
  seed: number;
  /** KD objectives: the warm-up factor of the distillation term this epoch (default 1). */
  kdWarmup?: number;
  /** This task's rows over the global batch's (data parallelism; default 1: the whole batch is here). */
  share?: number;
}

/** Host-side figures of one step. natural/robust are NaN when the objective has no such term. */
export interface StepStats {
  /** Rows of the global batch (all tasks). */
  batchSize: number;
  total: number;
  natural: number;
  robust: number;
  /** Correct train-mode predictions on x and on x' (NaN when that pass does not exist). */
  cleanCorrect: number;
  advCorrect: number;
}

/** Runs one full training step on (x, y). x and y stay owned by the caller. */
export function trainStep(t: Trainer, x: tf.Tensor4D, y: tf.Tensor1D, p: StepParams): StepStats {
  const cfg = t.config;
  const type = cfg.objective.type;
  const attackLoss = attackLossOf(cfg);
  let xAdv: tf.Tensor4D | undefined;
  let prior: tf.Tensor2D | undefined;
  let parts: ObjectiveParts | undefined;
  let perturbed = false;
  let kd: KdInputs | undefined;
  try {
    if (isKdObjective(type)) {
      if (!t.teacher) throw new Error(`trainStep: objective ${type} needs trainer.teacher (loadTeacher)`);
      kd = {
        logitsTeacher: teacherLogits(t.teacher.model, x),
        prior: t.kdPrior?.gather(y),
        warmup: p.kdWarmup ?? 1,
        distill: cfg.distill,
      };
    }
    // One gather of the class-wise weights serves the attack (ikl objective) and the loss (IKL-AT).
    if (t.classWeights && (type === 'ikl-at' || attackLoss === 'ikl')) prior = t.classWeights.gather(y);
    const attacks = type !== 'standard' && (kd === undefined || cfg.distill.adversarial);
    if (attacks) {
      // The attack runs on the inference executor, compiled from this step's weights (a few small ops per BN), or
      // in train mode with frozen running statistics (attack.bnMode train).
      const exec = cfg.attack.bnMode === 'train' ? batchStatisticsModel(t.model) : inferenceModel(t.model);
      try {
        xAdv = tf.tidy(() =>
          pgdPerturb(exec.fn, x, y, {
            eps: p.epsilon,
            norm: 'linf',
            steps: cfg.attack.steps,
            stepSize: p.stepSize,
            restarts: 1,
            seed: p.seed,
            start: cfg.attack.start,
            loss: attackLoss,
            alpha: cfg.attack.alpha,
            beta: cfg.attack.beta,
            classPrior: attackLoss === 'ikl' ? prior : undefined,
          }),
        );
      } finally {
        exec.dispose();
      }
    }
    const adv = xAdv;
    const lossPrior = type === 'ikl-at' ? prior : undefined;
    // The AutoAugment pair splits the robust term by view; AWP's ascent uses one IKL over all 2B rows, as
    // utils_awp.py's calc_awp does in the reference.
    const pair = cfg.data.pair.enabled ? { gamma: cfg.data.pair.gamma } : undefined;
    // Each task's loss is weighted by its share of the batch: the sum over tasks of the gradients is then the
    // gradient of the global batch's mean loss (the mean of the tasks' gradients for equal shards).
    const share = p.share ?? 1;
    const weighted = (loss: tf.Scalar): tf.Scalar => (share === 1 ? loss : tf.mul(loss, share));
    const lossOf = (fwd: TrainForward): tf.Scalar => {
      const q = objective(fwd, x, y, adv, lossPrior, cfg.objective, kd);
      return weighted(q.total);
    };
    const sumOverTasks = (g: tf.Tensor[]): tf.Tensor[] => t.collective.allReduce(g, 'sum');
    if (p.awp && t.awp) {
      t.awp.computeDirections(lossOf, trainForward, sumOverTasks);
      t.awp.perturb();
      perturbed = true;
    }
    // Keras momentum 0: running ← batch (PyTorch momentum 1); every pass of the step, as the reference.
    const bnMomenta = p.bnWarmStart ? setBnMomentum(t.model, 0) : undefined;
    let pass: { value: tf.Scalar; grads: tf.NamedTensorMap };
    try {
      pass = tf.variableGrads(() => {
        const q = objective(trainForward(t.model), x, y, adv, lossPrior, cfg.objective, kd, pair);
        // The other parts outlive the gradient computation (metrics, class weights): keep them from its tidy.
        for (const k of [q.natural, q.robust, q.logitsNat, q.logitsAdv]) if (k) tf.keep(k);
        parts = q;
        return weighted(q.total);
      }, t.params);
    } finally {
      if (bnMomenta) restoreBnMomentum(t.model, bnMomenta);
    }
    const { value, grads } = pass;
    const q = parts!;
    // One collective: the figures (weighted like the loss, counts summed), the gradients, task 0's BN statistics.
    const local = tf.tidy(() => {
      const nan = tf.scalar(Number.NaN);
      const correct = (logits: tf.Tensor2D | undefined): tf.Scalar =>
        logits ? (tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), y), 'float32')) as tf.Scalar) : nan;
      const w = (v: tf.Scalar | undefined) => (v ? weighted(v) : nan);
      const figures = tf.stack([value, w(q.natural), w(q.robust), correct(q.logitsNat), correct(q.logitsAdv), tf.scalar(x.shape[0])]);
      const buffers = t.model.nonTrainableWeights.map((b) => (t.collective.rank === 0 ? b.read().clone() : tf.zerosLike(b.read())));
      return [figures, ...buffers];
    });
    // The class-weight (and KD prior) sums take every task's examples: their increments travel in the same bucket.
    const increments = [...classWeightIncrement(t, q.logitsNat, y, pair !== undefined), ...(t.kdPrior && kd ? t.kdPrior.increment(kd.logitsTeacher, y) : [])];
    const gradList = t.params.map((v) => grads[v.name]!);
    let reduced: tf.Tensor[];
    try {
      reduced = t.collective.allReduce([...local, ...increments, ...gradList], 'sum');
    } finally {
      tf.dispose([value, ...local, ...increments, ...gradList]);
    }
    const nBuffers = t.model.nonTrainableWeights.length;
    const inc = reduced.splice(1 + nBuffers, increments.length);
    const figures = reduced[0]!.dataSync();
    const stats: StepStats = {
      batchSize: figures[5]!,
      total: figures[0]!,
      natural: figures[1]!,
      robust: figures[2]!,
      cleanCorrect: figures[3]!,
      advCorrect: figures[4]!,
    };
    if (!Number.isFinite(stats.total)) {
      tf.dispose([...reduced, ...inc]);
      throw new DivergenceError(`training loss is ${stats.total} (natural ${stats.natural}, robust ${stats.robust}); stopped before the optimizer step`);
    }
    t.model.nonTrainableWeights.forEach((b, i) => b.write(reduced[1 + i]!));
    t.optimizer.step(reduced.slice(1 + nBuffers), p.lr, p.momentum);
    tf.dispose(reduced);
    if (perturbed) {
      t.awp!.restore();
      perturbed = false;
    }
    // The clean logits of the loss pass (train mode, after x' was built), as the reference accumulates them.
    if (t.classWeights && q.logitsNat) t.classWeights.add(inc[0]!, inc[1]!);
    if (t.kdPrior && kd) t.kdPrior.add(inc.at(-2)!, inc.at(-1)!);
    tf.dispose(inc);
    if (t.weightAverage && p.averageWeights)
      t.weightAverage.update(
        t.model.weights.map((w) => w.read()),
        p.averageDecay,
      );
    return stats;
  } finally {
    // On an error the model must not stay perturbed.
    if (perturbed) t.awp!.restore();
    if (parts) disposeParts(parts);
    const own: (tf.Tensor | undefined)[] = [xAdv, prior, kd?.logitsTeacher, kd?.prior];
    tf.dispose(own.filter((v): v is tf.Tensor => v !== undefined));
  }
}

/**
 * This step's increment of the class-wise weight sums from the clean logits of the loss pass (train mode, after x'
 * was built), as the reference accumulates them; with the AutoAugment pair from view A only (the first half of the rows).
 */
function classWeightIncrement(t: Trainer, logitsNat: tf.Tensor2D | undefined, y: tf.Tensor1D, pair: boolean): tf.Tensor[] {
  if (!t.classWeights || !logitsNat) return [];
  if (!pair) return t.classWeights.increment(logitsNat, y);
  const b = y.shape[0] / 2;
  const [zA, yA] = [tf.slice(logitsNat, [0, 0], [b, -1]) as tf.Tensor2D, tf.slice(y, [0], [b]) as tf.Tensor1D];
  try {
    return t.classWeights.increment(zA, yA);
  } finally {
    tf.dispose([zA, yA]);
  }
}
