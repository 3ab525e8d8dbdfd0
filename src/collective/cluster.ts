/**
 * Where this process sits in a data-parallel run, from the standard cluster variables: TensorFlow's TF_CONFIG
 * (`{"cluster":{"worker":["host:port",…]},"task":{"type":"worker","index":i}}`), else Slurm's (`srun` with several
 * tasks: SLURM_PROCID, SLURM_NTASKS, SLURM_STEP_NODELIST, SLURM_STEP_TASKS_PER_NODE; ports from IKL_PORT, default
 * 29500, plus the task's index on its node). Neither set: one process.
 */
import { InputError } from '../errors.js';
import type { ClusterSpec } from './serverDef.js';

export const DEFAULT_PORT = 29500;

/** The cluster named by the environment, or undefined for a single process. */
export function clusterFromEnv(env: NodeJS.ProcessEnv = process.env): ClusterSpec | undefined {
  if (env.TF_CONFIG !== undefined && env.TF_CONFIG.trim() !== '') return parseTfConfig(env.TF_CONFIG);
  const ntasks = Number(env.SLURM_STEP_NUM_TASKS ?? env.SLURM_NTASKS ?? '1');
  if (env.SLURM_PROCID !== undefined && ntasks > 1) return slurmCluster(env);
  return undefined;
}

export function parseTfConfig(text: string): ClusterSpec {
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch {
    throw new InputError(`TF_CONFIG: expected JSON like {"cluster":{"worker":["host:port",…]},"task":{"type":"worker","index":0}}`);
  }
  const c = config as { cluster?: { worker?: unknown }; task?: { type?: unknown; index?: unknown } };
  const workers = c.cluster?.worker;
  if (!Array.isArray(workers) || workers.length === 0 || !workers.every((w) => typeof w === 'string' && /^[^\s:]+:\d+$/.test(w))) {
    throw new InputError(`TF_CONFIG: cluster.worker must be a non-empty list of "host:port" strings`);
  }
  const otherJobs = Object.keys(c.cluster ?? {}).filter((k) => k !== 'worker');
  if (otherJobs.length > 0) throw new InputError(`TF_CONFIG: cluster has jobs ${otherJobs.join(', ')}; only "worker" tasks are supported (no chief or ps)`);
  if (c.task?.type !== undefined && c.task.type !== 'worker') throw new InputError(`TF_CONFIG: task.type must be "worker", got ${JSON.stringify(c.task.type)}`);
  const rank = c.task?.index;
  if (typeof rank !== 'number' || !Number.isInteger(rank) || rank < 0 || rank >= workers.length) {
    throw new InputError(`TF_CONFIG: task.index must be an integer in [0, ${workers.length - 1}], got ${JSON.stringify(rank)}`);
  }
  return { workers: workers as string[], rank };
}

/** Expands a Slurm host list: "gpu[01-03,07],login1" → gpu01 gpu02 gpu03 gpu07 login1. */
export function expandHostList(list: string): string[] {
  const hosts: string[] = [];
  // Split on commas outside brackets.
  for (const part of list.match(/[^,[]+(\[[^\]]*\])?[^,]*/g) ?? []) {
    const m = /^([^[]*)\[([^\]]*)\](.*)$/.exec(part);
    if (!m) {
      hosts.push(part);
      continue;
    }
    for (const range of m[2]!.split(',')) {
      const [lo, hi = lo] = range.split('-') as [string, string?];
      for (let i = Number(lo); i <= Number(hi); i++) hosts.push(m[1] + String(i).padStart(lo.length, '0') + m[3]);
    }
  }
  return hosts;
}

/** Expands Slurm's tasks per node: "4(x2),1" → [4, 4, 1]. */
export function expandTasksPerNode(value: string): number[] {
  return value.split(',').flatMap((p) => {
    const m = /^(\d+)(?:\(x(\d+)\))?$/.exec(p.trim());
    if (!m) throw new InputError(`SLURM_TASKS_PER_NODE: cannot read ${JSON.stringify(value)}`);
    return Array<number>(Number(m[2] ?? 1)).fill(Number(m[1]));
  });
}

function slurmCluster(env: NodeJS.ProcessEnv): ClusterSpec {
  const nodes = expandHostList(env.SLURM_STEP_NODELIST ?? env.SLURM_JOB_NODELIST ?? '');
  const perNode = expandTasksPerNode(env.SLURM_STEP_TASKS_PER_NODE ?? env.SLURM_TASKS_PER_NODE ?? '');
  const base = Number(env.IKL_PORT ?? DEFAULT_PORT);
  if (!Number.isInteger(base) || base <= 0 || base > 65535) throw new InputError(`IKL_PORT: expected a port number, got ${env.IKL_PORT}`);
  if (nodes.length !== perNode.length)
    throw new InputError(`Slurm: ${nodes.length} nodes in the node list but ${perNode.length} entries in the tasks per node`);
  // srun's default block distribution: ranks fill node 0, then node 1, …
  const workers = nodes.flatMap((host, n) => Array.from({ length: perNode[n]! }, (_, local) => `${host}:${base + local}`));
  const rank = Number(env.SLURM_PROCID);
  if (!Number.isInteger(rank) || rank < 0 || rank >= workers.length)
    throw new InputError(`SLURM_PROCID: ${env.SLURM_PROCID} is not a task of the ${workers.length} in the step`);
  return { workers, rank };
}

/**
 * srun with --gres=gpu:G gives every task of a node all G GPUs: task i of the node keeps only the i-th
 * (SLURM_LOCALID), before TensorFlow initialises CUDA. TF_CONFIG runs (ikl-launch) set CUDA_VISIBLE_DEVICES per task
 * themselves. Returns the device list it set, if any.
 */
export function narrowGpusForSlurmTask(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const visible = env.CUDA_VISIBLE_DEVICES;
  if (env.TF_CONFIG || env.SLURM_LOCALID === undefined || visible === undefined || !visible.includes(',')) return undefined;
  if (!clusterFromEnv(env)) return undefined;
  const ids = visible.split(',');
  const local = Number(env.SLURM_LOCALID);
  env.CUDA_VISIBLE_DEVICES = ids[local % ids.length];
  return env.CUDA_VISIBLE_DEVICES;
}
