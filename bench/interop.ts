/**
 * Time to import a full-size WRN-34-10 PyTorch state_dict (186 MB of float32): read + unzip + restricted unpickle,
 * key check, layout conversion and writing the tfjs variables; and the time to export it back.
 *
 *   node dist/bench/interop.js [--file wrn34.pt] [--format pt|safetensors]
 *
 * Without --file, a random WRN-34-10 is written first with our own exporter (PyTorch's zip format, byte-compatible
 * with torch.save: torch.load(weights_only=True) reads it, see test/fixtures/interop/export_check.json). A file
 * written by PyTorch itself: `/work/pyenv/bin/python scripts/fixtures/torch_interop.py --random-wrn34 wrn34.pt`.
 */
import { rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { InputError } from '../src/errors.js';
import { exportModel, loadTorchModel, readStateDictFile } from '../src/interop/index.js';
import { createModel } from '../src/models/index.js';

function parseArgs(argv: string[]): { file?: string; format: 'pt' | 'safetensors' } {
  const o: { file?: string; format: 'pt' | 'safetensors' } = { format: 'pt' };
  for (let i = 0; i < argv.length; i += 2) {
    const v = argv[i + 1];
    if (v === undefined) throw new InputError(`${argv[i]}: missing value`);
    if (argv[i] === '--file') o.file = v;
    else if (argv[i] === '--format' && (v === 'pt' || v === 'safetensors')) o.format = v;
    else throw new InputError(`${argv[i]}: unknown flag or value (expected --file PATH, --format pt|safetensors)`);
  }
  return o;
}

const seconds = (t0: number): string => ((performance.now() - t0) / 1000).toFixed(2);

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const backend = await initBackend();
  let file = opts.file;
  let temp: string | undefined;
  if (!file) {
    temp = join(tmpdir(), `ikl-bench-wrn34-${process.pid}.${opts.format}`);
    const model = createModel({ arch: 'wrn-34-10', numClasses: 10, seed: 0 });
    const t0 = performance.now();
    await exportModel(model, 'wrn-34-10', temp);
    console.log(`export  wrn-34-10 → ${opts.format}: ${seconds(t0)} s`);
    model.dispose();
    file = temp;
  }
  const mb = (statSync(file).size / 2 ** 20).toFixed(0);
  let t0 = performance.now();
  const flat = await readStateDictFile(file);
  let n = 0;
  for (const t of flat.tensors.values()) n += t.read().length;
  console.log(`read + decode ${flat.tensors.size} tensors (${(n / 1e6).toFixed(1)} M values, ${mb} MiB): ${seconds(t0)} s`);
  t0 = performance.now();
  const m = await loadTorchModel(file);
  const x = tf.zeros([1, 32, 32, 3]);
  (m.model.predict(x) as tf.Tensor).dataSync(); // the weights are really on the device
  console.log(`import  ${m.arch} (${m.numClasses} classes, recognised from the keys), ready to evaluate: ${seconds(t0)} s  [backend ${backend.name}]`);
  tf.dispose(x);
  m.model.dispose();
  if (temp) rmSync(temp);
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(e instanceof InputError ? 2 : 1);
});
