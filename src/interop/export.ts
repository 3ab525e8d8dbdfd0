/** Export of a checkpoint directory (or a PyTorch/safetensors file) to a PyTorch state_dict file. */
import { readCheckpoint } from '../checkpoint/index.js';
import { InputError } from '../errors.js';
import { exportModel, exportFormat, isWeightFile, loadTorchModel } from './index.js';

export interface ExportResult {
  file: string;
  format: 'safetensors' | 'torch-zip';
  arch: string;
  num_classes: number;
  source: string;
  sha256: string;
}

/**
 * Writes `to` (atomically) from a checkpoint directory, whatever its generation of layer names (the mapping of
 * its architecture covers both), or from a PyTorch/safetensors file (a format conversion).
 */
export async function exportSource(source: string, to: string, opts: { arch?: string } = {}): Promise<ExportResult> {
  const format = exportFormat(to);
  if (await isWeightFile(source)) {
    const m = await loadTorchModel(source, { arch: opts.arch });
    try {
      const sha256 = await exportModel(m.model, m.arch, to, { source_sha256: m.source.sha256 });
      return { file: to, format, arch: m.arch, num_classes: m.numClasses, source, sha256 };
    } finally {
      m.model.dispose();
    }
  }
  const ckpt = await readCheckpoint(source);
  try {
    if (opts.arch !== undefined && opts.arch !== ckpt.meta.arch) throw new InputError(`--arch ${opts.arch}: checkpoint ${source} is a ${ckpt.meta.arch}`);
    const sha256 = await exportModel(ckpt.model, ckpt.meta.arch, to, { num_classes: String(ckpt.meta.numClasses), dataset: ckpt.meta.dataset });
    return { file: to, format, arch: ckpt.meta.arch, num_classes: ckpt.meta.numClasses, source, sha256 };
  } finally {
    ckpt.model.dispose();
  }
}
