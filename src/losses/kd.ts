/**
 * Knowledge-distillation objectives on logits (student z_s, teacher z_t, labels y), each the full per-step
 * loss of its mdistiller distiller: ceWeight·CE(z_s, y) + distillation term. The teacher always runs without
 * gradient in the reference (`torch.no_grad()`); here its logits are wrapped in S(·) so that nothing, whatever the
 * caller does, flows back into the teacher.
 *
 * - iklKdLoss: IKL for KD, `dkl_loss` of DKL's `distillers/IKL_KD.py`:
 *     ceWeight·CE + warmup·[β·(1/B) Σ_b (1/4) Σ_{j,k} w_b,j w_b,k ((z_s − z_t)_j − (z_s − z_t)_k)² + α·softCE_T]
 *   w_b = softmax(z_t,b / T2) (GI off) or the class prior s̄_{y_b} (GI on, `ClassWeights` with temperature T2
 *   over teacher logits). The wMSE is on raw logits (no T) and divided by the batch size (no mass normalisation
 *   as in iklLoss: rows of w sum to 1, so the two agree). softCE_T = −Σ_j softmax(z_t/T)_j log softmax(z_s/T)_j,
 *   without a T² factor (the reference has none).
 * - kdLoss: Hinton et al. 2015, `distillers/KD.py`: ceWeight·CE + kdWeight·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)).
 * - dkdLoss: decoupled KD (Zhao et al. 2022), `distillers/DKD.py`: ceWeight·CE + warmup·T²·(α·TCKD + β·NCKD),
 *   TCKD the KL of the binary (target, non-target) split, NCKD the KL among non-target classes.
 *
 * warmup is the factor min(epoch / WARMUP, 1) of the reference trainers (`warmupFactor`), epochs counted from 1.
 */
import * as tf from '@tensorflow/tfjs';
import { crossEntropy } from './crossEntropy.js';
import { stopGradient } from './gradient.js';
import { weightedPairwiseSquares } from './pairwise.js';
import { reduce, type Reduced, type Reduction } from './reduction.js';
import { softCrossEntropy } from './softCrossEntropy.js';
import { InputError } from '../errors.js';
import { checkLabels, checkLogits, checkNumber, checkReduction, checkSameShape } from './validate.js';

/** min(epoch / warmupEpochs, 1): the ramp of IKL_KD and DKD (mdistiller counts epochs from 1). */
export function warmupFactor(epoch: number, warmupEpochs: number): number {
  checkNumber('warmupFactor', 'epoch', epoch, { min: 0 });
  checkNumber('warmupFactor', 'warmupEpochs', warmupEpochs, { minExclusive: 0 });
  return Math.min(epoch / warmupEpochs, 1);
}

export interface IklKdOptions<R extends Reduction = 'mean'> {
  /** Weight of the soft cross-entropy (IKL_KD.ALPHA; 1–4 in the CIFAR-100 configs). */
  alpha: number;
  /** Weight of the wMSE (IKL_KD.BETA; 4–12 in the CIFAR-100 configs). */
  beta: number;
  /** Temperature T of the soft cross-entropy (IKL_KD.T; 4 in the CIFAR-100 configs, default 1 as the reference). */
  temperature?: number;
  /** Temperature T2 of the per-sample wMSE weights softmax(z_t/T2) (IKL_KD.T2, default 100). Unused with a prior. */
  temperature2?: number;
  /** B×C class prior rows s̄_{y_b} (`ClassWeights.gather(labels)`): GI on. Absent: GI off. A constant. */
  classPrior?: tf.Tensor2D;
  /** Weight of CE(z_s, y) (IKL_KD.CE_WEIGHT, default 1). */
  ceWeight?: number;
  /** Factor of the distillation term, `warmupFactor(epoch, WARMUP)` (default 1). */
  warmup?: number;
  reduction?: R;
}

function checkPair(fn: string, logitsStudent: tf.Tensor2D, logitsTeacher: tf.Tensor2D, labels: tf.Tensor1D): void {
  checkLogits(fn, 'logitsStudent', logitsStudent);
  checkSameShape(fn, 'logitsTeacher', logitsTeacher, 'logitsStudent', logitsStudent);
  checkLabels(fn, 'labels', labels, logitsStudent);
}

export function iklKdLoss<R extends Reduction = 'mean'>(
  logitsStudent: tf.Tensor2D,
  logitsTeacher: tf.Tensor2D,
  labels: tf.Tensor1D,
  opts: IklKdOptions<R>,
): Reduced<R> {
  const fn = 'iklKdLoss';
  checkPair(fn, logitsStudent, logitsTeacher, labels);
  if (opts === undefined || opts === null) throw new InputError(`${fn}: options { alpha, beta } are required`);
  const alpha = checkNumber(fn, 'alpha', opts.alpha, { min: 0 });
  const beta = checkNumber(fn, 'beta', opts.beta, { min: 0 });
  const temperature = checkNumber(fn, 'temperature', opts.temperature ?? 1, { minExclusive: 0 });
  const temperature2 = checkNumber(fn, 'temperature2', opts.temperature2 ?? 100, { minExclusive: 0 });
  const ceWeight = checkNumber(fn, 'ceWeight', opts.ceWeight ?? 1, { min: 0 });
  const warmup = checkNumber(fn, 'warmup', opts.warmup ?? 1, { min: 0 });
  const reduction = checkReduction(fn, opts.reduction ?? 'mean') as R;
  const prior = opts.classPrior;
  if (prior !== undefined) {
    checkSameShape(fn, 'classPrior', prior, 'logitsStudent', logitsStudent);
    if (prior.dtype !== 'float32') throw new InputError(`${fn}: classPrior must be float32, got ${prior.dtype}`);
  }
  return tf.tidy(() => {
    const teacher = stopGradient(logitsTeacher);
    const w = prior !== undefined ? stopGradient(prior) : tf.softmax(tf.div(teacher, temperature2));
    // Δ_teacher − Δ_student = pairwise differences of z_t − z_s; the square makes the sign irrelevant.
    const d = tf.sub(logitsStudent, teacher) as tf.Tensor2D;
    const wmse = tf.mul(beta / 4, weightedPairwiseSquares(w as tf.Tensor2D, d));
    const softCe = tf.mul(alpha, softCrossEntropy(teacher, logitsStudent, temperature));
    const kd = tf.mul(warmup, tf.add(wmse, softCe));
    const ce = tf.mul(ceWeight, crossEntropy(logitsStudent, labels, { reduction: 'none' }));
    return reduce(tf.add(ce, kd) as tf.Tensor1D, reduction);
  });
}

/** Per example Σ_j p_j (log p_j − log q_j) from log-probabilities (KL(p ‖ q), 0·log 0 counted as 0). */
function klFromLogs(logP: tf.Tensor2D, logQ: tf.Tensor2D): tf.Tensor1D {
  return tf.sum(tf.mul(tf.exp(logP), tf.sub(logP, logQ)), 1) as tf.Tensor1D;
}

export interface KdOptions<R extends Reduction = 'mean'> {
  /** Temperature T (KD.TEMPERATURE, default 4). */
  temperature?: number;
  /** Weight of CE(z_s, y) (KD.LOSS.CE_WEIGHT, default 0.1). */
  ceWeight?: number;
  /** Weight of T²·KL (KD.LOSS.KD_WEIGHT, default 0.9). */
  kdWeight?: number;
  reduction?: R;
}

export function kdLoss<R extends Reduction = 'mean'>(
  logitsStudent: tf.Tensor2D,
  logitsTeacher: tf.Tensor2D,
  labels: tf.Tensor1D,
  opts: KdOptions<R> = {},
): Reduced<R> {
  const fn = 'kdLoss';
  checkPair(fn, logitsStudent, logitsTeacher, labels);
  const temperature = checkNumber(fn, 'temperature', opts.temperature ?? 4, { minExclusive: 0 });
  const ceWeight = checkNumber(fn, 'ceWeight', opts.ceWeight ?? 0.1, { min: 0 });
  const kdWeight = checkNumber(fn, 'kdWeight', opts.kdWeight ?? 0.9, { min: 0 });
  const reduction = checkReduction(fn, opts.reduction ?? 'mean') as R;
  return tf.tidy(() => {
    const logT = tf.logSoftmax(tf.div(stopGradient(logitsTeacher), temperature));
    const logS = tf.logSoftmax(tf.div(logitsStudent, temperature));
    const kd = tf.mul(kdWeight * temperature * temperature, klFromLogs(logT as tf.Tensor2D, logS as tf.Tensor2D));
    const ce = tf.mul(ceWeight, crossEntropy(logitsStudent, labels, { reduction: 'none' }));
    return reduce(tf.add(ce, kd) as tf.Tensor1D, reduction);
  });
}

export interface DkdOptions<R extends Reduction = 'mean'> {
  /** Weight of TCKD (DKD.ALPHA, default 1). */
  alpha?: number;
  /** Weight of NCKD (DKD.BETA, default 8; 0.5–8 in the CIFAR-100 configs). */
  beta?: number;
  /** Temperature T (DKD.T, default 4). */
  temperature?: number;
  /** Weight of CE(z_s, y) (DKD.CE_WEIGHT, default 1). */
  ceWeight?: number;
  /** Factor of the distillation term, `warmupFactor(epoch, DKD.WARMUP)` (default 1). */
  warmup?: number;
  reduction?: R;
}

/** log of the binary (target, non-target) probabilities [log p_y, log Σ_{j≠y} p_j] of softmax(z), B×2. */
function binaryLogProbs(z: tf.Tensor2D, gtMask: tf.Tensor2D): tf.Tensor2D {
  // The reference sums the masked probabilities and takes their log; log-sum-exp over each part is the same
  // number without the underflow of log(Σ p) when a part is tiny.
  const lse = tf.logSumExp(z, 1, true);
  const logGt = tf.sub(tf.sum(tf.mul(z, gtMask), 1, true), lse);
  const logOther = tf.sub(tf.logSumExp(tf.sub(z, tf.mul(1e9, gtMask)), 1, true), lse);
  return tf.concat([logGt, logOther], 1) as tf.Tensor2D;
}

export function dkdLoss<R extends Reduction = 'mean'>(
  logitsStudent: tf.Tensor2D,
  logitsTeacher: tf.Tensor2D,
  labels: tf.Tensor1D,
  opts: DkdOptions<R> = {},
): Reduced<R> {
  const fn = 'dkdLoss';
  checkPair(fn, logitsStudent, logitsTeacher, labels);
  if (logitsStudent.shape[1] < 2) throw new InputError(`${fn}: needs at least 2 classes, got ${logitsStudent.shape[1]}`);
  const alpha = checkNumber(fn, 'alpha', opts.alpha ?? 1, { min: 0 });
  const beta = checkNumber(fn, 'beta', opts.beta ?? 8, { min: 0 });
  const temperature = checkNumber(fn, 'temperature', opts.temperature ?? 4, { minExclusive: 0 });
  const ceWeight = checkNumber(fn, 'ceWeight', opts.ceWeight ?? 1, { min: 0 });
  const warmup = checkNumber(fn, 'warmup', opts.warmup ?? 1, { min: 0 });
  const reduction = checkReduction(fn, opts.reduction ?? 'mean') as R;
  return tf.tidy(() => {
    const gtMask = tf.oneHot(labels, logitsStudent.shape[1]).toFloat() as tf.Tensor2D;
    const zt = tf.div(stopGradient(logitsTeacher), temperature) as tf.Tensor2D;
    const zs = tf.div(logitsStudent, temperature) as tf.Tensor2D;
    const tckd = klFromLogs(binaryLogProbs(zt, gtMask), binaryLogProbs(zs, gtMask));
    // NCKD: the reference subtracts 1000 from the target logit (after /T) so that it drops out of both softmaxes.
    const logTOther = tf.logSoftmax(tf.sub(zt, tf.mul(1000, gtMask))) as tf.Tensor2D;
    const logSOther = tf.logSoftmax(tf.sub(zs, tf.mul(1000, gtMask))) as tf.Tensor2D;
    const nckd = klFromLogs(logTOther, logSOther);
    const t2 = temperature * temperature;
    const kd = tf.mul(warmup * t2, tf.add(tf.mul(alpha, tckd), tf.mul(beta, nckd)));
    const ce = tf.mul(ceWeight, crossEntropy(logitsStudent, labels, { reduction: 'none' }));
    return reduce(tf.add(ce, kd) as tf.Tensor1D, reduction);
  });
}
