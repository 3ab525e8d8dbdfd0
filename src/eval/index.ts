/** Evaluation runs: options, resumable state, shards, reports and their merge. */
export * from './types.js';
export * from './options.js';
export * from './validity.js';
export * from './state.js';
export * from './report.js';
export * from './plan.js';
export * from './model.js';
export * from './run.js';
export * from './per-class.js';
export * from './tensorboard.js';
