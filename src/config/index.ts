/** The training configuration: zod schema (= documentation), loading with overrides, hashing, JSON Schema. */
export * from './schema.js';
export * from './resolve.js';
export { parseNumberExpr, parseNumberText } from './number.js';
export { configDiff, describeConfigDiff } from './diff.js';
