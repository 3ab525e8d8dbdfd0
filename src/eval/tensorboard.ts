/**
 * `ikl-eval --tensorboard DIR`: the report as TensorBoard scalars (src/tensorboard.ts), so an evaluation sits
 * beside its training curves. The x axis is the attack sequence: step 0 is the clean accuracy, step s the robust
 * accuracy after stage s (tag eval/accuracy), each stage also under its own tag (eval/after/<stage>), and the
 * final robust and worst-class accuracies at the last step.
 */
import { TensorBoardWriter } from '../tensorboard.js';
import type { EvalReport } from './types.js';

/** Writes one event file into `dir` and returns its path. */
export function writeReportEvents(report: EvalReport, dir: string): string {
  const w = new TensorBoardWriter(dir);
  try {
    w.scalars(0, { 'eval/accuracy': report.clean_acc, 'eval/clean_acc': report.clean_acc });
    report.stages.forEach((s, i) => w.scalars(i + 1, { 'eval/accuracy': s.robust_acc, [`eval/after/${s.name}`]: s.robust_acc }));
    w.scalars(report.stages.length, {
      'eval/robust_acc': report.robust_acc,
      'eval/worst_class_robust_acc': report.per_class_summary?.worst_robust_acc,
      'eval/class_spread': report.per_class_summary?.spread,
    });
    return w.file;
  } finally {
    w.close();
  }
}
