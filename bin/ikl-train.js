#!/usr/bin/env node
// ikl-train: adversarial training (IKL-AT, TRADES, PGD-AT) from a config file. See `ikl-train --help`.
// Start-up shared by every bin (quiet TensorFlow, build check, signals through npx): bin/_start.js.
import { start } from './_start.js';

await start('ikl-train', 'dist/src/cli/train.js');
