import type { Norm } from '../attacks/types.js';
import type { DatasetName } from '../data/types.js';

/** Attacks `ikl-eval --attack` accepts. `cw` is PGD on the CW margin loss; `autoattack` the standard ensemble. */
export const EVAL_ATTACKS = ['pgd', 'fgsm', 'cw', 'apgd-ce', 'apgd-t', 'fab-t', 'square', 'autoattack'] as const;
export type EvalAttack = (typeof EVAL_ATTACKS)[number];

/** Which contiguous block of the first nExamples a run covers (`--shard index/count`). */
export interface Shard {
  index: number;
  count: number;
}

/** Half-open range [start, end) of example indices into the test set. */
export interface Slice {
  start: number;
  end: number;
}

/**
 * Every option that changes the numbers of an evaluation. Two runs with equal EvalOptions give equal reports
 * (up to timings), whatever the machine, the sharding of the work or how often they were interrupted.
 */
export interface EvalOptions {
  checkpoint: string;
  attack: EvalAttack;
  /** The ball radius as a number, and as the user wrote it ('8/255'). */
  eps: number;
  epsInput: string;
  norm: Norm;
  /** Iterations (PGD/APGD/FAB) or queries (Square); null for the AutoAttack ensemble (fixed standard settings). */
  steps: number | null;
  /** Absolute step size, only for the attacks that take one (pgd, cw); null otherwise. */
  stepSize: number | null;
  stepSizeInput: string | null;
  /** Restarts of pgd/cw; null for the attacks that run AutoAttack's single restart. */
  restarts: number | null;
  nExamples: number;
  batchSize: number;
  dataset: DatasetName;
  dataDir: string;
  seed: number;
  shard: Shard | null;
  /**
   * 'trades': TRADES' PGD-20 evaluation (options.ts, TRADES_PROTOCOL), which attacks every point and counts a
   * point robust when its last iterate is classified correctly. Absent for our own protocol (so older state
   * files keep matching).
   */
  protocol?: 'trades';
  /**
   * `--attack autoattack` only: the version other than standard ('plus', 'rand'), or 'custom' for the stage list
   * `attacks`. Both absent for standard (so older state files keep matching).
   */
  aaVersion?: 'plus' | 'rand' | 'custom';
  attacks?: string[];
}

/** One attack of a run (one for pgd, four for autoattack), applied to what is still robust. */
export interface StageReport {
  name: string;
  robust_acc: number;
  robust_correct: number;
  time_s: number;
}

/** Extremes over every adversarial input produced: the numbers a reader checks to trust the result. */
export interface Validity {
  /** Largest ‖x_adv − x‖ (in the attack's norm) over all examples. Must be ≤ eps (+ float rounding). */
  max_perturbation: number;
  nan_count: number;
  min: number;
  max: number;
}

/** One class of the per-class table (src/eval/per-class.ts). Counts over the report's examples of that class. */
export interface PerClassRow {
  class: number;
  /** The class name, where the dataset has one we know (CIFAR-10). */
  name?: string;
  n: number;
  clean_correct: number;
  robust_correct: number;
  clean_acc: number;
  robust_acc: number;
}

/** The worst and best class by robust accuracy, and the spread between them (best − worst). */
export interface PerClassSummary {
  worst_class: number;
  worst_class_name?: string;
  worst_robust_acc: number;
  worst_clean_acc: number;
  best_class: number;
  best_class_name?: string;
  best_robust_acc: number;
  spread: number;
}

export interface EvalReport {
  tool: 'ikl-eval';
  /** The path the model was read from, as given (for humans: the model is identified by weights_sha256). */
  checkpoint: string;
  /**
   * sha256 over the model's weights (src/checkpoint/identity.ts): equal for the same weights whatever the path.
   * Absent only in reports of older versions.
   */
  weights_sha256?: string;
  /** When --checkpoint is a PyTorch/safetensors file: its sha256 and how its state_dict was found (src/interop). */
  checkpoint_sha256?: string;
  weights_source?: { format: string; container: string; prefix: string; file?: string };
  /** When the model is `robustbench:<name>`: the leaderboard's numbers beside ours, and whether the settings match. */
  robustbench?: import('../interop/robustbench.js').RobustBenchComparison;
  arch: string;
  num_classes: number;
  dataset: string;
  attack: EvalAttack;
  attack_params: {
    eps: number;
    eps_input: string;
    norm: Norm;
    steps: number | null;
    step_size: number | null;
    step_size_input: string | null;
    restarts: number | null;
    loss: string | null;
    stages: string[];
    /** Settings fixed by the attack rather than by flags (target classes, AutoAttack budgets...). */
    details: Record<string, number | string>;
  };
  eps: number;
  eps_input: string;
  norm: Norm;
  seed: number;
  batch_size: number;
  /** Examples evaluated by this report (the slice of a shard, or all of n_examples_total). */
  n_examples: number;
  n_examples_total: number;
  shard: Shard | null;
  slice: Slice;
  clean_acc: number;
  clean_correct: number;
  robust_acc: number;
  robust_correct: number;
  stages: StageReport[];
  /** Per-class clean and robust counts (absent in reports of older versions) and their worst class and spread. */
  per_class?: PerClassRow[];
  per_class_summary?: PerClassSummary | null;
  time_s: { clean: number; attack: number };
  validity: Validity & { line: string };
  sanity_warnings: string[];
  backend: { name: string; package: string; devices: string[] };
  /** When the report was made (ISO 8601, UTC); a merged report: its newest shard's. Absent in older reports. */
  created_at?: string;
  /** The ikl-at version that made it (several, comma-separated, in a merge of shards from different versions). */
  ikl_at_version?: string;
  /** The epoch after which the checkpoint was written (its checkpoint.json), null for a weight file. */
  checkpoint_epoch?: number | null;
}
