#!/usr/bin/env node
// ikl-doctor: diagnoses the TensorFlow.js set-up (backend, CUDA/cuDNN libraries, threads, a benchmark). See `ikl-doctor --help`.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/src/cli/doctor.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('ikl-doctor: the TypeScript sources are not built yet: run `npm run setup` (or `npm run build`) first\n');
  process.exit(2);
}
const { main } = await import(entry.href);
await main(process.argv);
