import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterFromEnv, expandHostList, expandTasksPerNode, narrowGpusForSlurmTask, parseTfConfig } from '../../src/collective/cluster.js';
import { InputError } from '../../src/errors.js';

test('TF_CONFIG: workers and this task', () => {
  const tfConfig = JSON.stringify({ cluster: { worker: ['a:1', 'b:2', 'c:3'] }, task: { type: 'worker', index: 2 } });
  assert.deepEqual(clusterFromEnv({ TF_CONFIG: tfConfig }), { workers: ['a:1', 'b:2', 'c:3'], rank: 2 });
  assert.equal(clusterFromEnv({}), undefined);
  assert.equal(clusterFromEnv({ SLURM_PROCID: '0', SLURM_NTASKS: '1' }), undefined);
});

test('TF_CONFIG: bad values are one-line input errors naming the field', () => {
  const bad: [string, RegExp][] = [
    ['{', /TF_CONFIG: expected JSON/],
    ['{"cluster":{"worker":[]},"task":{"index":0}}', /cluster\.worker/],
    ['{"cluster":{"worker":["a"]},"task":{"index":0}}', /host:port/],
    ['{"cluster":{"worker":["a:1"],"chief":["b:2"]},"task":{"index":0}}', /chief/],
    ['{"cluster":{"worker":["a:1"]},"task":{"type":"ps","index":0}}', /task\.type/],
    ['{"cluster":{"worker":["a:1","b:1"]},"task":{"index":2}}', /task\.index must be an integer in \[0, 1\]/],
  ];
  for (const [text, message] of bad) {
    assert.throws(
      () => parseTfConfig(text),
      (e: Error) => e instanceof InputError && message.test(e.message) && !e.message.includes('\n'),
      text,
    );
  }
});

test('Slurm: host lists, tasks per node and the block distribution of ranks', () => {
  assert.deepEqual(expandHostList('gpu[01-03,07],login1'), ['gpu01', 'gpu02', 'gpu03', 'gpu07', 'login1']);
  assert.deepEqual(expandHostList('n[8-10]'), ['n8', 'n9', 'n10']);
  assert.deepEqual(expandHostList('single'), ['single']);
  assert.deepEqual(expandTasksPerNode('4(x2),1'), [4, 4, 1]);
  const env = { SLURM_PROCID: '5', SLURM_NTASKS: '8', SLURM_STEP_NODELIST: 'g[1-2]', SLURM_STEP_TASKS_PER_NODE: '4(x2)', IKL_PORT: '30000' };
  const spec = clusterFromEnv(env)!;
  assert.equal(spec.workers.length, 8);
  assert.equal(spec.rank, 5);
  assert.deepEqual(spec.workers.slice(3, 6), ['g1:30003', 'g2:30000', 'g2:30001']);
  // TF_CONFIG wins over Slurm's variables.
  assert.equal(clusterFromEnv({ ...env, TF_CONFIG: '{"cluster":{"worker":["x:1"]},"task":{"index":0}}' })!.workers[0], 'x:1');
  assert.throws(() => clusterFromEnv({ ...env, SLURM_PROCID: '8' }), InputError);
});

test('Slurm: each task of a node keeps its own GPU', () => {
  const env: NodeJS.ProcessEnv = {
    SLURM_PROCID: '6',
    SLURM_LOCALID: '2',
    SLURM_NTASKS: '8',
    SLURM_STEP_NODELIST: 'g[1-2]',
    SLURM_STEP_TASKS_PER_NODE: '4(x2)',
    CUDA_VISIBLE_DEVICES: '0,1,2,3',
  };
  assert.equal(narrowGpusForSlurmTask(env), '2');
  assert.equal(env.CUDA_VISIBLE_DEVICES, '2');
  // One GPU already, or a single-process job: untouched.
  assert.equal(narrowGpusForSlurmTask({ ...env, CUDA_VISIBLE_DEVICES: '3' }), undefined);
  assert.equal(narrowGpusForSlurmTask({ SLURM_PROCID: '0', SLURM_LOCALID: '0', SLURM_NTASKS: '1', CUDA_VISIBLE_DEVICES: '0,1' }), undefined);
});

test('a cluster on a backend without the patched binding is refused with one line (exit 2)', async () => {
  const tf = await import('@tensorflow/tfjs');
  const { createCollective } = await import('../../src/collective/index.js');
  const env = { TF_CONFIG: JSON.stringify({ cluster: { worker: ['127.0.0.1:1', '127.0.0.1:2'] }, task: { index: 0 } }) };
  if (tf.getBackend() === 'tensorflow') {
    // Native backend: the patched binding is there (binding.test.ts); the single-process case needs no cluster.
    assert.equal(createCollective({ env: {} }).size, 1);
    return;
  }
  assert.throws(
    () => createCollective({ env }),
    (e: Error) => e instanceof InputError && /needs TensorFlow's collective ops/.test(e.message),
  );
});
