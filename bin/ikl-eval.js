#!/usr/bin/env node
// ikl-eval: robustness evaluation (PGD, AutoAttack, ...) of an ikl-at checkpoint. See `ikl-eval --help`.
import { main } from '../dist/src/cli/eval.js';

await main(process.argv);
