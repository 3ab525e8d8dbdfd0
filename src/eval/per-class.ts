/**
 * Per-class robustness in the report: clean and robust counts for every class, the worst class and the spread.
 * Robust accuracy is very unequal across classes (cat, bird, dog far below automobile and truck on CIFAR-10), and
 * IKL's class-wise weights exist because of it. Counts, not ratios, are stored, so shard reports merge by adding
 * them and the merge reproduces the unsharded table exactly.
 */
import type { PerClassRow, PerClassSummary } from './types.js';

/** CIFAR-10's class names in label order (the dataset's batches.meta.txt). */
export const CIFAR10_CLASS_NAMES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'] as const;

function ratio(k: number, n: number): number {
  return n === 0 ? 0 : k / n;
}

function nameOf(dataset: string, c: number): string | undefined {
  return dataset === 'cifar10' ? CIFAR10_CLASS_NAMES[c] : undefined;
}

/**
 * The table of a slice: for every class c < numClasses, its examples, how many are classified correctly on
 * clean inputs, and how many are still correct after every stage (`robust`, 1/0 per example, aligned with
 * `labels` and `clean`).
 */
export function perClassRows(
  labels: ArrayLike<number>,
  clean: ArrayLike<number>,
  robust: ArrayLike<number>,
  numClasses: number,
  dataset: string,
): PerClassRow[] {
  const n = new Array<number>(numClasses).fill(0);
  const c = new Array<number>(numClasses).fill(0);
  const r = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i]!;
    if (!(y >= 0 && y < numClasses)) throw new Error(`per-class counts: label ${y} of example ${i} is not in [0, ${numClasses})`);
    n[y]!++;
    if (clean[i] === 1) c[y]!++;
    if (robust[i] === 1) r[y]!++;
  }
  return n.map((count, k) => row(k, count, c[k]!, r[k]!, dataset));
}

function row(k: number, n: number, clean: number, robust: number, dataset: string): PerClassRow {
  const name = nameOf(dataset, k);
  return {
    class: k,
    ...(name !== undefined ? { name } : {}),
    n,
    clean_correct: clean,
    robust_correct: robust,
    clean_acc: ratio(clean, n),
    robust_acc: ratio(robust, n),
  };
}

/**
 * The worst and best class by robust accuracy among the classes present (ties: the lower class index), and the
 * spread between them (best − worst); null when no class has an example.
 */
export function perClassSummary(rows: PerClassRow[]): PerClassSummary | null {
  const present = rows.filter((r) => r.n > 0);
  if (present.length === 0) return null;
  let worst = present[0]!;
  let best = present[0]!;
  for (const r of present) {
    if (r.robust_acc < worst.robust_acc) worst = r;
    if (r.robust_acc > best.robust_acc) best = r;
  }
  return {
    worst_class: worst.class,
    ...(worst.name !== undefined ? { worst_class_name: worst.name } : {}),
    worst_robust_acc: worst.robust_acc,
    worst_clean_acc: worst.clean_acc,
    best_class: best.class,
    ...(best.name !== undefined ? { best_class_name: best.name } : {}),
    best_robust_acc: best.robust_acc,
    spread: best.robust_acc - worst.robust_acc,
  };
}

/** The table of the union of disjoint slices: counts added class by class (the tables must have the same classes). */
export function mergePerClass(tables: PerClassRow[][], dataset: string): PerClassRow[] {
  const first = tables[0]!;
  return first.map((_, k) => {
    const sum = (f: (r: PerClassRow) => number) => tables.reduce((a, t) => a + f(t[k]!), 0);
    return row(
      k,
      sum((r) => r.n),
      sum((r) => r.clean_correct),
      sum((r) => r.robust_correct),
      dataset,
    );
  });
}
