/**
 * ikl-at: IKL adversarial training and robustness evaluation on TensorFlow.js.
 * The library core; the CLIs in src/cli only parse flags and call these.
 */
export * from './errors.js';
export * from './backend.js';
export * from './log.js';
export * from './rng.js';
export * from './losses/index.js';
export * from './data/index.js';
export * from './models/index.js';
export * from './attacks/index.js';
export * from './checkpoint/index.js';
export * from './config/index.js';
export * from './train/index.js';
export * from './eval/index.js';
/** PyTorch interop (state_dicts in and out), as a namespace: `interop.loadTorchModel`, `interop.exportModel`... */
export * as interop from './interop/index.js';
