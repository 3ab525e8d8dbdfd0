/**
 * ikl-at's patch of tfjs-node's binding (scripts/native/tfjs-node-4.22.0.patch): the functions exist, list(type)
 * and list(string) attributes reach TensorFlow (IdentityN; _FusedConv2D against tfjs' conv2d + bias + relu), and
 * op placement takes the binding's device and refuses an unknown one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { assertClose, heavy, noLeak, rng } from '../helpers.js';
import { executeOp, IKL_PATCH, patchedBinding } from '../../src/collective/native.js';

test('the patched binding reports its version and the new functions', heavy, () => {
  const b = patchedBinding();
  assert.ok(b, 'binding without the ikl-at patch: run npm run setup:native');
  assert.equal(b.IKL_PATCH, IKL_PATCH);
  for (const f of ['enableCollectiveOps', 'abortCollectiveOps', 'checkPeerHealth', 'listDevices', 'deviceName', 'copyToDevice']) {
    assert.equal(typeof b[f], 'function', f);
  }
  const devices = b.listDevices();
  assert.ok(devices.includes(b.deviceName()), `${b.deviceName()} among ${devices.join(', ')}`);
  // Not part of a cluster: aborting has nothing to abort.
  assert.equal(b.abortCollectiveOps('nothing'), false);
});

test('list(type): IdentityN passes a float32 and an int32 tensor through', heavy, async () => {
  const b = patchedBinding()!;
  await noLeak(() => {
    const x = tf.tensor2d([1.5, -2, 3, 4], [2, 2]);
    const n = tf.tensor1d([7, 8, 9], 'int32');
    const [y, m] = executeOp('IdentityN', [{ name: 'T', type: b.TF_ATTR_TYPE, value: [b.TF_FLOAT, b.TF_INT32] }], [x, n], 2);
    assert.deepEqual(y!.shape, [2, 2]);
    assert.equal(m!.dtype, 'int32');
    assert.deepEqual(Array.from(y!.dataSync()), [1.5, -2, 3, 4]);
    assert.deepEqual(Array.from(m!.dataSync()), [7, 8, 9]);
    tf.dispose([x, n, y!, m!]);
  });
});

test('list(string) and list(type): _FusedConv2D (BiasAdd, Relu) equals tfjs conv2d + bias + relu', heavy, async () => {
  const b = patchedBinding()!;
  const r = rng(3);
  const x = tf.tensor4d(
    Float32Array.from({ length: 2 * 6 * 6 * 3 }, () => r() - 0.5),
    [2, 6, 6, 3],
  );
  const w = tf.tensor4d(
    Float32Array.from({ length: 3 * 3 * 3 * 4 }, () => r() - 0.5),
    [3, 3, 3, 4],
  );
  const bias = tf.tensor1d([0.1, -0.2, 0.05, -0.3]);
  await noLeak(() => {
    const attrs = [
      { name: 'T', type: b.TF_ATTR_TYPE, value: b.TF_FLOAT },
      { name: 'TArgs', type: b.TF_ATTR_TYPE, value: [b.TF_FLOAT] },
      { name: 'num_args', type: b.TF_ATTR_INT, value: 1 },
      { name: 'strides', type: b.TF_ATTR_INT, value: [1, 1, 1, 1] },
      { name: 'padding', type: b.TF_ATTR_STRING, value: 'SAME' },
      { name: 'fused_ops', type: b.TF_ATTR_STRING, value: ['BiasAdd', 'Relu'] },
    ];
    const [fused] = executeOp('_FusedConv2D', attrs, [x, w, bias], 1, b.deviceName());
    const expected = tf.tidy(() => tf.relu(tf.add(tf.conv2d(x, w, 1, 'same'), bias)));
    assert.deepEqual(fused!.shape, [2, 6, 6, 4]);
    assertClose(fused!.dataSync(), expected.dataSync(), 1e-5, '_FusedConv2D');
    // The fused op must have applied the ReLU (a list(string) dropped to its first element would not).
    assert.ok(expected.dataSync().some((v) => v === 0) && fused!.dataSync().every((v) => v >= 0));
    tf.dispose([fused!, expected]);
    assert.throws(() => executeOp('_FusedConv2D', attrs, [x, w, bias], 1, '/job:nowhere/device:CPU:7'));
  });
  tf.dispose([x, w, bias]);
});
