/**
 * The collective: the one object through which the tasks of a data-parallel run combine their numbers (gradients,
 * class-wise weight sums, epoch metrics, validation counts). One process is the identity implementation; several
 * processes use TensorFlow's collective runtime (the engine of MultiWorkerMirroredStrategy: gRPC between tasks,
 * NCCL between GPUs), never a home-made all-reduce. The trainer calls `allReduce` whatever the world size, as
 * torch.distributed code does.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { type ClusterSpec, encodeServerDef, JOB } from './serverDef.js';
import { executeOp, patchedBinding, whyUnpatched, type PatchedBinding } from './native.js';

export type ReduceOp = 'sum' | 'mean';

export interface Collective {
  /** This task's index, 0 … size-1. */
  readonly rank: number;
  /** Number of tasks. */
  readonly size: number;
  /**
   * The element-wise sum (or mean) of each float32 tensor over all tasks, as new tensors the caller owns (the
   * inputs are not disposed). All tasks must call it in the same order with tensors of the same shapes; the
   * tensors travel as one buffer (one collective op per call, however many tensors).
   */
  allReduce(tensors: tf.Tensor[], op: ReduceOp): tf.Tensor[];
  /** The same for plain numbers (metrics, counts): float32 on the wire, exact for integers up to 2^24. */
  allReduceNumbers(values: number[], op: ReduceOp): number[];
  /** Whether any task says true (a stop request, a failed check): every task gets the same answer. */
  anyOf(flag: boolean): boolean;
  /** Task 0's numbers, on every task (float32 on the wire: integers up to 2^24 travel exactly). */
  broadcastNumbers(values: number[]): number[];
  /** Gives up on the collectives in flight and to come: each later call throws `message`. */
  abort(message: string): void;
}

/** A failed or timed-out collective: a task died, hung or disagreed. The message is one line for the user. */
export class CollectiveError extends Error {
  override name = 'CollectiveError';
}

/** One process: every reduction is the identity (a mean over one task is the value itself). */
export class SingleProcess implements Collective {
  readonly rank = 0;
  readonly size = 1;
  allReduce(tensors: tf.Tensor[]): tf.Tensor[] {
    return tensors.map((t) => t.clone());
  }
  allReduceNumbers(values: number[]): number[] {
    // float32 on the wire in the multi-task case: round here too, so one task and N tasks agree.
    return Array.from(Float32Array.from(values));
  }
  anyOf(flag: boolean): boolean {
    return flag;
  }
  broadcastNumbers(values: number[]): number[] {
    return this.allReduceNumbers(values);
  }
  abort(): void {}
}

export interface TensorFlowCollectiveOptions {
  /**
   * Seconds a collective may wait for the other tasks before it fails (CollectiveReduceV2's `timeout_seconds`, which
   * also bounds the first call's group resolution). executeOp blocks the JS thread, so this is what keeps a task
   * whose peer died or hung from waiting forever.
   */
  timeoutSeconds: number;
}

/** Group key of the one group of all tasks (any positive integer the tasks agree on). */
const GROUP_KEY = 1;

/**
 * Tasks of a cluster, through TensorFlow's collective ops (native backend with ikl-at's binding patch). Enabling
 * collectives renames the local devices to /job:worker/replica:0/task:<rank>/… and starts a gRPC server on this
 * task's address; it can be done once per process.
 */
export class TensorFlowCollective implements Collective {
  readonly rank: number;
  readonly size: number;
  /** The device tensors live on after the rename (reported by the binding). */
  readonly device: string;
  private readonly binding: PatchedBinding;
  private readonly timeoutSeconds: number;
  /** Eager collectives are matched across tasks by (group, instance) key: every call takes the next one. */
  private instanceKey = 1;
  private aborted: string | undefined;

  constructor(spec: ClusterSpec, options: TensorFlowCollectiveOptions) {
    const binding = patchedBinding();
    // A set-up problem the user fixes (backend choice, setup:native): bad input, exit 2.
    if (!binding) throw new InputError(`TF_CONFIG/Slurm: a cluster of ${spec.workers.length} tasks needs TensorFlow's collective ops, but ${whyUnpatched()}`);
    this.binding = binding;
    this.rank = spec.rank;
    this.size = spec.workers.length;
    this.timeoutSeconds = options.timeoutSeconds;
    this.device = binding.enableCollectiveOps(encodeServerDef(spec));
  }

  allReduce(tensors: tf.Tensor[], op: ReduceOp): tf.Tensor[] {
    if (tensors.length === 0) return [];
    for (const t of tensors) if (t.dtype !== 'float32') throw new Error(`allReduce: float32 tensors only, got ${t.dtype}`);
    return tf.tidy(() => {
      const flat = tensors.length === 1 ? tensors[0]!.reshape([-1]) : tf.concat(tensors.map((t) => t.reshape([-1])));
      const reduced = this.reduce(flat, op);
      if (tensors.length === 1) return [reduced.reshape(tensors[0]!.shape)];
      const parts = tf.split(
        reduced,
        tensors.map((t) => t.size),
      );
      return parts.map((p, i) => p.reshape(tensors[i]!.shape));
    });
  }

  allReduceNumbers(values: number[], op: ReduceOp): number[] {
    if (values.length === 0) return [];
    const x = tf.tensor1d(values, 'float32');
    try {
      const [y] = this.allReduce([x], op);
      try {
        return Array.from(y!.dataSync());
      } finally {
        y!.dispose();
      }
    } finally {
      x.dispose();
    }
  }

  anyOf(flag: boolean): boolean {
    return this.allReduceNumbers([flag ? 1 : 0], 'sum')[0]! > 0;
  }

  broadcastNumbers(values: number[]): number[] {
    // A sum in which only task 0 contributes: exact, whatever the reduction order.
    return this.allReduceNumbers(this.rank === 0 ? values : values.map(() => 0), 'sum');
  }

  abort(message: string): void {
    this.aborted ??= message;
    this.binding.abortCollectiveOps(message);
  }

  /** Asks a task whether it is alive (TFE_CollectiveOpsCheckPeerHealth); throws CollectiveError if not. */
  checkPeer(rank: number, timeoutMs: number): void {
    try {
      this.binding.checkPeerHealth(`/job:${JOB}/replica:0/task:${rank}`, timeoutMs);
    } catch (e) {
      throw new CollectiveError(`task ${rank} of ${this.size} does not answer (${firstLine(e)})`);
    }
  }

  private reduce(flat: tf.Tensor, op: ReduceOp): tf.Tensor {
    if (this.aborted !== undefined) throw new CollectiveError(this.aborted);
    const B = this.binding;
    const key = this.instanceKey++;
    const ints = [tf.scalar(this.size, 'int32'), tf.scalar(GROUP_KEY, 'int32'), tf.scalar(key, 'int32')];
    const attrs = [
      { name: 'T', type: B.TF_ATTR_TYPE, value: B.TF_FLOAT },
      { name: 'merge_op', type: B.TF_ATTR_STRING, value: 'Add' },
      { name: 'final_op', type: B.TF_ATTR_STRING, value: op === 'mean' ? 'Div' : 'Id' },
      { name: 'communication_hint', type: B.TF_ATTR_STRING, value: 'auto' },
      { name: 'timeout_seconds', type: B.TF_ATTR_FLOAT, value: this.timeoutSeconds },
      // ordering_token: an empty list of resources (no automatic control dependencies in eager).
      { name: 'Nordering_token', type: B.TF_ATTR_INT, value: 0 },
    ];
    const started = Date.now();
    try {
      return executeOp('CollectiveReduceV2', attrs, [flat, ...ints], 1)[0]!;
    } catch (e) {
      const seconds = ((Date.now() - started) / 1000).toFixed(0);
      const why = this.aborted ?? `a task died, hung or stopped early (${firstLine(e)})`;
      this.aborted ??= why;
      throw new CollectiveError(`task ${this.rank} of ${this.size}: all-reduce #${key} failed after ${seconds} s: ${why}`);
    } finally {
      tf.dispose(ints);
    }
  }
}

/** TensorFlow's status codes a collective fails with (tensorflow/core/protobuf/error_codes.proto). */
const TF_CODES: Record<string, string> = { '1': 'CANCELLED', '4': 'DEADLINE_EXCEEDED', '10': 'ABORTED', '13': 'INTERNAL', '14': 'UNAVAILABLE' };

/** One line from the binding's "Invalid TF_Status: <code>\nMessage: <message>" (or any error). */
function firstLine(e: unknown): string {
  const text = (e as Error).message ?? String(e);
  const code = /Invalid TF_Status: (\d+)/.exec(text)?.[1];
  const message = /Message: ([^\n]*)/.exec(text)?.[1]?.trim();
  if (code === undefined) return text.split('\n')[0]!;
  const line = `${TF_CODES[code] ?? `TF status ${code}`}${message ? `: ${message}` : ''}`;
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}
