/**
 * ikl-at: IKL adversarial training and robustness evaluation on TensorFlow.js.
 * The library core; the CLIs in src/cli only parse flags and call these.
 */
export * from './errors.js';
export * from './backend.js';
