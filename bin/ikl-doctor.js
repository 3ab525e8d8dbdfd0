#!/usr/bin/env node
// ikl-doctor: diagnoses the TensorFlow.js set-up (backend, CUDA/cuDNN libraries, threads, a benchmark). See `ikl-doctor --help`.
// Start-up shared by every bin (quiet TensorFlow, build check, signals through npx): bin/_start.js.
import { start } from './_start.js';

await start('ikl-doctor', 'dist/src/cli/doctor.js');
