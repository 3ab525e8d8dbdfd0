#!/usr/bin/env node
// ikl-launch: runs ikl-train as N data-parallel tasks (or ikl-eval as N shards). See `ikl-launch --help`.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/src/cli/launch.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('ikl-launch: the TypeScript sources are not built yet: run `npm run setup` (or `npm run build`) first\n');
  process.exit(2);
}
const { main } = await import(entry.href);
await main(process.argv);
