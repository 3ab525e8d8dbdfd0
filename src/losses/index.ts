/** Losses on logits (B×C): KL, DKL, IKL/GKL, class-wise weights, KD objectives (IKL-KD, KD, DKD), cross-entropy, CW margin, DLR. */
export { klLoss, type KlOptions } from './kl.js';
export { dklLoss, type DklOptions } from './dkl.js';
export { iklLoss, type IklOptions } from './ikl.js';
export { iklKdLoss, kdLoss, dkdLoss, warmupFactor, type IklKdOptions, type KdOptions, type DkdOptions } from './kd.js';
export { ClassWeights, type ClassWeightsOptions, type ClassWeightsJSON } from './classWeights.js';
export { crossEntropy, type CrossEntropyOptions } from './crossEntropy.js';
export { cwMarginLoss, dlrLoss, dlrTargetedLoss, type MarginOptions } from './margin.js';
export { softCrossEntropy } from './softCrossEntropy.js';
export { weightedPairwiseSquares } from './pairwise.js';
export { detached, stopGradient } from './gradient.js';
export type { Reduction, Reduced } from './reduction.js';
