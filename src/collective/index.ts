import { clusterFromEnv } from './cluster.js';
import { InputError } from '../errors.js';
import { type Collective, SingleProcess, TensorFlowCollective } from './collective.js';

export { type Collective, type ReduceOp, CollectiveError, SingleProcess, TensorFlowCollective, type TensorFlowCollectiveOptions } from './collective.js';
export { clusterFromEnv, parseTfConfig, expandHostList, expandTasksPerNode, narrowGpusForSlurmTask, DEFAULT_PORT } from './cluster.js';
export { encodeServerDef, type ClusterSpec, JOB } from './serverDef.js';
export { executeOp, patchedBinding, whyUnpatched, IKL_PATCH, type OpAttr, type PatchedBinding } from './native.js';

/** Default seconds a collective waits for the other tasks (the bound: a dead peer is noticed within it). */
export const DEFAULT_COLLECTIVE_TIMEOUT_SECONDS = 300;

/** IKL_COLLECTIVE_TIMEOUT (seconds a collective waits for the other tasks), or the default. */
export function collectiveTimeoutFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.IKL_COLLECTIVE_TIMEOUT;
  if (v === undefined || v === '') return DEFAULT_COLLECTIVE_TIMEOUT_SECONDS;
  const n = Number(v);
  if (!(n > 0 && Number.isFinite(n))) throw new InputError(`IKL_COLLECTIVE_TIMEOUT: expected a positive number of seconds, got ${JSON.stringify(v)}`);
  return n;
}

/** The collective of this process: TensorFlow's collective ops when the environment names a cluster, else one process. */
export function createCollective(options: { timeoutSeconds?: number; env?: NodeJS.ProcessEnv } = {}): Collective {
  const spec = clusterFromEnv(options.env);
  if (!spec || spec.workers.length === 1) return new SingleProcess();
  return new TensorFlowCollective(spec, { timeoutSeconds: options.timeoutSeconds ?? DEFAULT_COLLECTIVE_TIMEOUT_SECONDS });
}
