#!/usr/bin/env node
// ikl-train: adversarial training (IKL-AT, TRADES, PGD-AT) from a config file. See `ikl-train --help`.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/src/cli/train.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('ikl-train: the TypeScript sources are not built yet: run `npm run setup` (or `npm run build`) first\n');
  process.exit(2);
}
const { main } = await import(entry.href);
await main(process.argv);
