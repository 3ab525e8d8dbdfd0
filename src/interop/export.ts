/** Export of a checkpoint directory (or a PyTorch/safetensors file) to a PyTorch state_dict file. */
import { readFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { readCheckpoint } from '../checkpoint/index.js';
import { InputError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { exportModel, exportFormat, isWeightFile, loadTorchModel } from './index.js';
import { readPaperInfo, robustBenchInfo } from './robustbench-info.js';

export interface ExportResult {
  file: string;
  format: 'safetensors' | 'torch-zip';
  arch: string;
  num_classes: number;
  source: string;
  sha256: string;
  /** The identity ikl-eval reports carry for these weights (a checkpoint's weights hash, a weight file's sha256). */
  weights_sha256: string;
  /** With `robustbench`: the model-info JSON written, the leaderboard, RobustBench's constructor, fields left to fill. */
  robustbench?: { info_file: string; dataset: string; threat: string; constructor: string; to_fill: string[] };
}

export interface RobustBenchExportOptions {
  /** An ikl-eval report of standard AutoAttack on the full test set of these weights. */
  report: string;
  /** JSON with link, name, authors, venue, ... (robustbench-info.ts PAPER_FIELDS). */
  paperInfo?: string;
  /** Where the model-info JSON goes; default `<to without extension>.json`. */
  infoTo?: string;
}

interface Loaded {
  model: tf.LayersModel;
  arch: string;
  numClasses: number;
  weightsSha256: string;
  metadata: Record<string, string>;
  dispose(): void;
}

async function loadSource(source: string, opts: { arch?: string }): Promise<Loaded> {
  if (await isWeightFile(source)) {
    const m = await loadTorchModel(source, { arch: opts.arch });
    return {
      model: m.model,
      arch: m.arch,
      numClasses: m.numClasses,
      weightsSha256: m.source.sha256,
      metadata: { source_sha256: m.source.sha256 },
      dispose: () => m.model.dispose(),
    };
  }
  const ckpt = await readCheckpoint(source);
  if (opts.arch !== undefined && opts.arch !== ckpt.meta.arch) {
    ckpt.model.dispose();
    throw new InputError(`--arch ${opts.arch}: checkpoint ${source} is a ${ckpt.meta.arch}`);
  }
  return {
    model: ckpt.model,
    arch: ckpt.meta.arch,
    numClasses: ckpt.meta.numClasses,
    weightsSha256: ckpt.weightsSha256,
    metadata: { num_classes: String(ckpt.meta.numClasses), dataset: ckpt.meta.dataset },
    dispose: () => ckpt.model.dispose(),
  };
}

/**
 * Writes `to` (atomically) from a checkpoint directory, whatever its generation of layer names (the mapping of
 * its architecture covers both), or from a PyTorch/safetensors file (a format conversion). With `robustbench`,
 * also RobustBench's model-info JSON, after the report has been checked against these weights (nothing is
 * written when it is refused).
 */
export async function exportSource(source: string, to: string, opts: { arch?: string; robustbench?: RobustBenchExportOptions } = {}): Promise<ExportResult> {
  const format = exportFormat(to);
  const paper = opts.robustbench?.paperInfo === undefined ? {} : readPaperInfo(opts.robustbench.paperInfo);
  let report: unknown;
  if (opts.robustbench) {
    try {
      report = JSON.parse(readFileSync(opts.robustbench.report, 'utf8'));
    } catch (e) {
      throw new InputError(`--robustbench-info ${opts.robustbench.report}: ${(e as NodeJS.ErrnoException).code ?? 'not JSON'} (expected an ikl-eval report)`);
    }
  }
  const m = await loadSource(source, opts);
  try {
    const rb = opts.robustbench ? robustBenchInfo(report, opts.robustbench.report, m, paper) : undefined;
    const sha256 = await exportModel(m.model, m.arch, to, m.metadata);
    const result: ExportResult = { file: to, format, arch: m.arch, num_classes: m.numClasses, source, sha256, weights_sha256: m.weightsSha256 };
    if (rb) {
      const infoFile = opts.robustbench!.infoTo ?? join(dirname(to), `${basename(to, extname(to))}.json`);
      await writeFileAtomic(infoFile, `${JSON.stringify(rb.info, null, 2)}\n`);
      result.robustbench = { info_file: infoFile, dataset: rb.info.dataset, threat: rb.threat, constructor: rb.constructor, to_fill: rb.toFill };
    }
    return result;
  } finally {
    m.dispose();
  }
}
