import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { assertClose, noLeak, rng } from '../helpers.js';
import { conv2dBackpropFilter, conv2dBackpropInput, reluBackward, type ConvPad } from '../../src/models/kernels.js';

function randomTensor(shape: number[], seed: number): tf.Tensor {
  const r = rng(seed);
  return tf.tensor(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => 2 * r() - 1),
    shape,
  );
}

test('reluBackward is dy where the ReLU output is positive and 0 where it is 0 (exact zeros included)', async () => {
  await noLeak(() =>
    tf.tidy(() => {
      // Every third entry exactly 0 (a ReLU output at its kink): the gradient there is 0, as in tfjs' relu.
      const y = tf.relu(
        tf.mul(
          randomTensor([2, 5, 5, 3], 1),
          tf.tensor(
            Float32Array.from({ length: 150 }, (_, i) => (i % 3 === 0 ? 0 : 1)),
            [2, 5, 5, 3],
          ),
        ),
      );
      const dy = randomTensor([2, 5, 5, 3], 2);
      const expected = Float32Array.from(dy.dataSync(), (g, i) => ((y.dataSync()[i] as number) > 0 ? g : 0));
      assertClose(reluBackward(dy, y).dataSync(), expected, 0, 'dy·1[y > 0]');
    }),
  );
});

// Each backprop against tfjs' own gradient of the same convolution written as pad + 'valid' (the composition
// the models used before), for PyTorch's symmetric padding and an asymmetric one.
for (const [name, pad, strides] of [
  [
    'symmetric, stride 2',
    [
      [0, 0],
      [1, 1],
      [1, 1],
      [0, 0],
    ],
    [2, 2],
  ],
  [
    'asymmetric, stride 1',
    [
      [0, 0],
      [0, 2],
      [1, 0],
      [0, 0],
    ],
    [1, 1],
  ],
  ['same, stride 2', 'same', [2, 2]],
] as [string, ConvPad, [number, number]][]) {
  test(`conv2d backprop (${name}) equals the gradient of tfjs' conv2d`, async () => {
    await noLeak(() =>
      tf.tidy(() => {
        const x = randomTensor([2, 7, 6, 3], 3) as tf.Tensor4D;
        const w = randomTensor([3, 3, 3, 4], 4) as tf.Tensor4D;
        const conv = (xx: tf.Tensor4D, ww: tf.Tensor4D) =>
          Array.isArray(pad) ? tf.conv2d(tf.pad(xx, pad), ww, strides, 'valid') : tf.conv2d(xx, ww, strides, pad);
        const y = conv(x, w);
        const dy = randomTensor(y.shape, 5) as tf.Tensor4D;
        const [gx, gw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv(a as tf.Tensor4D, b as tf.Tensor4D), dy)))([x, w]);
        assertClose(conv2dBackpropInput(dy, w, x.shape, strides, pad).dataSync(), gx!.dataSync(), 1e-5, 'input gradient');
        assertClose(conv2dBackpropFilter(x, dy, w.shape, strides, pad).dataSync(), gw!.dataSync(), 1e-5, 'filter gradient');
      }),
    );
  });
}
