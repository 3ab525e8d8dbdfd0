/**
 * `ikl-export`: a checkpoint (or a PyTorch/safetensors file) → a PyTorch state_dict under the official key names
 * of its architecture, as .safetensors or PyTorch's zip format (.pt/.pth), chosen by the extension of --to.
 * Prints one JSON line on stdout. Exit 0 success, 2 bad input (one line), 1 failure.
 */
import { Command } from 'commander';
import { EXIT, InputError } from '../errors.js';
import { runProgram } from './common.js';

interface ExportFlags {
  to?: string;
  arch?: string;
  backend?: string;
  robustbenchInfo?: string;
  paperInfo?: string;
  infoTo?: string;
}

const EXAMPLES = `
Examples:
  $ ikl-export runs/ikl-wrn34/best --to wrn34.safetensors
  $ ikl-export runs/ikl-wrn34/best --to wrn34.pt            # PyTorch zip format (torch.load(weights_only=True))
  $ ikl-export released.pt --to released.safetensors        # convert a PyTorch file (architecture recognised)
  $ ikl-export runs/ikl-wrn34/best --to Ours_WRN-34-10.pt --robustbench-info aa.json --paper-info paper.json
      # + Ours_WRN-34-10.json, RobustBench's model info, from ikl-eval's AutoAttack report of the full test set

In Python, with the official model definition:
  model.load_state_dict(safetensors.torch.load_file('wrn34.safetensors'), strict=True)`;

async function exportAction(source: string, flags: ExportFlags): Promise<number> {
  if (flags.to === undefined || flags.to.trim() === '') throw new InputError('--to: an output file (.safetensors, .pt or .pth) is required');
  const { exportFormat } = await import('../interop/index.js');
  exportFormat(flags.to); // bad extension: fail before loading anything
  const { initBackend, parseBackendChoice } = await import('../backend.js');
  await initBackend(flags.backend === undefined ? undefined : parseBackendChoice(flags.backend));
  const { exportSource } = await import('../interop/export.js');
  if (flags.robustbenchInfo === undefined && (flags.paperInfo !== undefined || flags.infoTo !== undefined)) {
    throw new InputError(`${flags.paperInfo !== undefined ? '--paper-info' : '--info-to'}: only means something with --robustbench-info <report>`);
  }
  const robustbench = flags.robustbenchInfo === undefined ? undefined : { report: flags.robustbenchInfo, paperInfo: flags.paperInfo, infoTo: flags.infoTo };
  const r = await exportSource(source, flags.to, { arch: flags.arch, robustbench });
  process.stdout.write(`${JSON.stringify(r)}\n`);
  return EXIT.ok;
}

export function buildProgram(run: (body: () => Promise<number>) => void): Command {
  return new Command('ikl-export')
    .description('Writes the weights of a checkpoint as a PyTorch state_dict with the official key names (load_state_dict(strict=True) accepts it).')
    .argument('<checkpoint>', 'checkpoint directory, or a PyTorch .pt/.pth / .safetensors file')
    .option('--to <file>', 'output file; the format follows the extension: .safetensors, .pt or .pth')
    .option('--arch <name>', 'architecture of a PyTorch input file (default: recognised from its keys)')
    .option('--robustbench-info <report>', "also write RobustBench's model-info JSON from this ikl-eval AutoAttack report (full test set, these weights)")
    .option('--paper-info <file>', 'JSON with link, name, authors, venue, additional_data, footnote, ... for the model info')
    .option('--info-to <file>', 'where the model info goes (default: --to with .json)')
    .option('--backend <name>', 'auto|tensorflow|gpu|cpu (default $IKL_BACKEND or auto)')
    .addHelpText('after', EXAMPLES)
    .allowExcessArguments(false)
    .action((source: string, flags: ExportFlags) => run(() => exportAction(source, flags)));
}

/** Entry point of bin/ikl-export.js. */
export async function main(argv: string[] = process.argv): Promise<void> {
  await runProgram('ikl-export', buildProgram, argv);
}
