#!/usr/bin/env node
// ikl-eval: robustness evaluation (PGD, AutoAttack, ...) of an ikl-at checkpoint. See `ikl-eval --help`.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/src/cli/eval.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('ikl-eval: the TypeScript sources are not built yet: run `npm run setup` (or `npm run build`) first\n');
  process.exit(2);
}
const { main } = await import(entry.href);
await main(process.argv);
