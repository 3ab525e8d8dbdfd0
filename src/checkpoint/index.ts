/** Atomic, checksummed checkpoint directories (tfjs layers model + named tensors + JSON state), and resume. */
export * from './types.js';
export {
  writeCheckpoint,
  readCheckpoint,
  verifyCheckpoint,
  findResumableCheckpoint,
  listGenerations,
  type WriteOptions,
  type WriteResult,
  type ReadOptions,
  type VerifiedCheckpoint,
  type ResumePoint,
} from './checkpoint.js';
export { weightsIdentity, shortId } from './identity.js';
