#!/usr/bin/env node
// ikl-export: a checkpoint → PyTorch state_dict (.safetensors / .pt) under the official key names. See `ikl-export --help`.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/src/cli/export.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('ikl-export: the TypeScript sources are not built yet: run `npm run setup` (or `npm run build`) first\n');
  process.exit(2);
}
const { main } = await import(entry.href);
await main(process.argv);
