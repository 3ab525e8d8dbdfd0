#!/usr/bin/env node
// ikl-eval: robustness evaluation (PGD, AutoAttack, ...) of an ikl-at checkpoint. See `ikl-eval --help`.
// Start-up shared by every bin (quiet TensorFlow, build check, signals through npx): bin/_start.js.
import { start } from './_start.js';

await start('ikl-eval', 'dist/src/cli/eval.js');
