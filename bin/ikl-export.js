#!/usr/bin/env node
// ikl-export: a checkpoint → PyTorch state_dict (.safetensors / .pt) under the official key names. See `ikl-export --help`.
// Start-up shared by every bin (quiet TensorFlow, build check, signals through npx): bin/_start.js.
import { start } from './_start.js';

await start('ikl-export', 'dist/src/cli/export.js');
