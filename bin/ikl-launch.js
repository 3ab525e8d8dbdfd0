#!/usr/bin/env node
// ikl-launch: runs ikl-train as N data-parallel tasks (or ikl-eval as N shards). See `ikl-launch --help`.
// Start-up shared by every bin (quiet TensorFlow, build check, signals through npx): bin/_start.js.
import { start } from './_start.js';

await start('ikl-launch', 'dist/src/cli/launch.js');
