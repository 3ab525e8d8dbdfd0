#!/usr/bin/env node
// ikl-train: adversarial training (IKL-AT, TRADES, PGD-AT) from a config file. See `ikl-train --help`.
import { main } from '../dist/src/cli/train.js';

await main(process.argv);
