/**
 * The serialized `tensorflow.ServerDef` that turns one eager context into task i of a cluster
 * (`TFE_EnableCollectiveOps`). Hand-encoded: five fields of four messages, so a protobuf library (or TensorFlow's
 * .proto files) would be more code than the encoder. Field numbers are TensorFlow's
 * (tensorflow/core/protobuf/tensorflow_server.proto, cluster.proto, config.proto); test/collective/serverDef.test.ts
 * checks the bytes against the ones python's protobuf writes from the descriptors inside the TensorFlow wheel.
 */

/** Where the tasks of a data-parallel run listen, and which one this process is. */
export interface ClusterSpec {
  /** "host:port" of every task, in rank order (TF_CONFIG's cluster.worker). */
  workers: string[];
  /** This process's index in `workers`. */
  rank: number;
}

/** The job every task belongs to: TensorFlow's convention for MultiWorkerMirroredStrategy. */
export const JOB = 'worker';

class Writer {
  private readonly bytes: number[] = [];
  varint(value: number): this {
    let v = value;
    while (v > 0x7f) {
      this.bytes.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    this.bytes.push(v);
    return this;
  }
  /** A varint field (wire type 0); proto3 omits zero, except in map entries (`always`), as TensorFlow's writers do. */
  int(field: number, value: number, always = false): this {
    return value === 0 && !always ? this : this.varint(field * 8).varint(value);
  }
  /** A length-delimited field (wire type 2): bytes, a string or a sub-message. */
  bytesField(field: number, value: Uint8Array): this {
    this.varint(field * 8 + 2).varint(value.length);
    for (const b of value) this.bytes.push(b);
    return this;
  }
  string(field: number, value: string): this {
    return value === '' ? this : this.bytesField(field, new TextEncoder().encode(value));
  }
  message(field: number, build: (w: Writer) => void): this {
    const inner = new Writer();
    build(inner);
    return this.bytesField(field, inner.finish());
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

/**
 * ServerDef { cluster: ClusterDef { job: JobDef { name: "worker", tasks: {i: workers[i]} } }, job_name: "worker",
 * task_index: rank, default_session_config: ConfigProto { experimental { collective_group_leader: task 0 } },
 * protocol: "grpc" }.
 */
export function encodeServerDef(spec: ClusterSpec, protocol = 'grpc'): Uint8Array {
  const leader = `/job:${JOB}/replica:0/task:0`;
  return new Writer()
    .message(1, (cluster) =>
      cluster.message(1, (job) => {
        job.string(1, JOB);
        // map<int32, string> tasks: one entry message { key = 1, value = 2 } per task.
        spec.workers.forEach((address, i) => job.message(2, (entry) => entry.int(1, i, true).string(2, address)));
      }),
    )
    .string(2, JOB)
    .int(3, spec.rank)
    .message(4, (config) => config.message(16, (experimental) => experimental.string(1, leader)))
    .string(5, protocol)
    .finish();
}
