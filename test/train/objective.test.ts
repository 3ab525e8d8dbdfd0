import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { noLeak, assertClose } from '../helpers.js';
import { objective, disposeParts, type ObjectiveOptions } from '../../src/train/objective.js';

// Tiny fixture: the "model" reshapes B×1×1×C inputs into logits, so the objective sees chosen logits.
const B = 3;
const C = 4;
const zNat = [
  [1.0, -0.5, 0.3, 2.0],
  [0.2, 0.1, -1.0, 0.0],
  [-0.3, 1.5, 0.7, -2.0],
];
const zAdv = [
  [0.4, 0.2, 0.9, 1.1],
  [0.5, -0.4, -0.2, 0.3],
  [0.1, 0.6, 1.2, -1.0],
];
const labels = [3, 0, 1];
const prior = [
  [0.1, 0.2, 0.3, 0.4],
  [0.25, 0.25, 0.25, 0.25],
  [0.7, 0.1, 0.1, 0.1],
];

const softmax = (z: number[]): number[] => {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const ce = (z: number[][], y: number[]): number => mean(z.map((r, b) => -Math.log(softmax(r)[y[b]!]!)));
const kl = (zn: number[][], za: number[][]): number =>
  mean(
    zn.map((r, b) => {
      const s = softmax(r);
      const sa = softmax(za[b]!);
      return s.reduce((acc, p, j) => acc + p * (Math.log(p) - Math.log(sa[j]!)), 0);
    }),
  );
/** IKL by its C×C definition (not the O(C) form the library uses). */
const ikl = (zn: number[][], za: number[][], w: number[][], alpha: number, beta: number, target: number[][] = zn): number =>
  mean(
    zn.map((r, b) => {
      let wmse = 0;
      for (let j = 0; j < C; j++) {
        for (let k = 0; k < C; k++) {
          const d = r[j]! - r[k]! - (za[b]![j]! - za[b]![k]!);
          wmse += w[b]![j]! * w[b]![k]! * d * d;
        }
      }
      const s = softmax(target[b]!);
      const sa = softmax(za[b]!);
      const softCe = -s.reduce((acc, p, j) => acc + p * Math.log(sa[j]!), 0);
      return (beta / 4) * wmse + alpha * softCe;
    }),
  );

const base: ObjectiveOptions = { type: 'ikl-at', alpha: 3, beta: 20, gamma: 1, temperature: 1, tradesBeta: 6, labelSmoothing: 0 };

function run(opts: ObjectiveOptions): { natural?: number; robust?: number; total: number; calls: number; order: string[]; hasNat: boolean; hasAdv: boolean } {
  return tf.tidy(() => {
    let calls = 0;
    const order: string[] = [];
    const x = tf.tensor4d(zNat.flat(), [B, 1, 1, C]);
    const xAdv = tf.tensor4d(zAdv.flat(), [B, 1, 1, C]);
    const forward = (input: tf.Tensor4D): tf.Tensor2D => {
      calls++;
      order.push(input === xAdv ? 'adv' : input === x ? 'nat' : '?');
      return tf.reshape(input, [input.shape[0], C]);
    };
    const y = tf.tensor1d(labels, 'int32');
    const p = objective(forward, x, y, xAdv, tf.tensor2d(prior), opts);
    return {
      natural: p.natural?.dataSync()[0],
      robust: p.robust?.dataSync()[0],
      total: p.total.dataSync()[0]!,
      calls,
      order,
      hasNat: p.logitsNat !== undefined,
      hasAdv: p.logitsAdv !== undefined,
    };
  });
}

test("ikl-at: CE(z, y) + IKL(z, z'; s̄_y, α, β) with two separate forward passes", async () => {
  await noLeak(() => {
    const r = run(base);
    const nat = ce(zNat, labels);
    const rob = ikl(zNat, zAdv, prior, 3, 20);
    assertClose([r.natural!, r.robust!, r.total], [nat, rob, nat + rob], 1e-5, 'ikl-at parts');
    assert.equal(r.calls, 2, 'clean and adversarial batches go through the model separately');
    // train_dkl_cifar10.py: `logits_adv, logits_nat = model(x_adv), model(x_natural)`; the last train-mode pass
    // decides which batch the BN running statistics were updated with last.
    assert.deepEqual(r.order, ['adv', 'nat'], 'forward order as the reference');
    assert.ok(r.hasNat && r.hasAdv);
  });
});

test("trades: CE + β·KL(s‖s'); pgd-at: CE(f(x')); standard: CE(f(x))", async () => {
  await noLeak(() => {
    const t = run({ ...base, type: 'trades' });
    assertClose([t.natural!, t.robust!, t.total], [ce(zNat, labels), 6 * kl(zNat, zAdv), ce(zNat, labels) + 6 * kl(zNat, zAdv)], 1e-5, 'trades');
    assert.equal(t.calls, 2);
    assert.deepEqual(t.order, ['adv', 'nat'], "the DKL repo's TRADES baseline order (train_trades_cifar.py)");
    const p = run({ ...base, type: 'pgd-at' });
    assertClose([p.total], [ce(zAdv, labels)], 1e-5, 'pgd-at');
    assert.equal(p.calls, 1, 'pgd-at never forwards the clean batch');
    assert.equal(p.hasNat, false);
    const s = run({ ...base, type: 'standard' });
    assertClose([s.total], [ce(zNat, labels)], 1e-5, 'standard');
    assert.equal(s.calls, 1);
    assert.equal(s.hasAdv, false);
  });
});

test('label smoothing applies to the CE term', async () => {
  await noLeak(() => {
    const eps = 0.1;
    const smoothed = mean(
      zNat.map((r, b) => {
        const ls = softmax(r).map(Math.log);
        return -ls.reduce((acc, l, j) => acc + ((j === labels[b] ? 1 - eps : 0) + eps / C) * l, 0);
      }),
    );
    const s = run({ ...base, type: 'standard', labelSmoothing: eps });
    assertClose([s.total], [smoothed], 1e-5, 'label-smoothed CE');
  });
});

test('ikl-at gradient with respect to the clean and adversarial logits matches finite differences', async () => {
  await noLeak(() => {
    // The soft-CE target S(softmax(z)) is a constant for the gradient: keep it at the unperturbed z.
    const f = (zn: number[][], za: number[][]): number => ce(zn, labels) + ikl(zn, za, prior, 3, 20, zNat);
    const [gNat, gAdv] = tf.tidy(() => {
      const y = tf.tensor1d(labels, 'int32');
      const pr = tf.tensor2d(prior);
      const forward = (x: tf.Tensor4D): tf.Tensor2D => tf.reshape(x, [x.shape[0], C]);
      const g = tf.grads((x: tf.Tensor, xa: tf.Tensor) => objective(forward, x as tf.Tensor4D, y, xa as tf.Tensor4D, pr, base).total);
      return g([tf.tensor4d(zNat.flat(), [B, 1, 1, C]), tf.tensor4d(zAdv.flat(), [B, 1, 1, C])]).map((t) => t.dataSync());
    });
    const h = 1e-5;
    const fd = (which: 0 | 1): number[] => {
      const out: number[] = [];
      for (let b = 0; b < B; b++) {
        for (let j = 0; j < C; j++) {
          const plus = [zNat.map((r) => r.slice()), zAdv.map((r) => r.slice())];
          const minus = [zNat.map((r) => r.slice()), zAdv.map((r) => r.slice())];
          plus[which]![b]![j]! += h;
          minus[which]![b]![j]! -= h;
          out.push((f(plus[0]!, plus[1]!) - f(minus[0]!, minus[1]!)) / (2 * h));
        }
      }
      return out;
    };
    assertClose(gNat!, fd(0), 2e-3, '∂L/∂z');
    // Non-zero wMSE gradient into z' is what IKL adds over KL (asymmetry broken).
    assertClose(gAdv!, fd(1), 2e-3, "∂L/∂z'");
  });
});

test('disposeParts releases every tensor', async () => {
  await noLeak(() => {
    const x = tf.tensor4d(zNat.flat(), [B, 1, 1, C]);
    const xa = tf.tensor4d(zAdv.flat(), [B, 1, 1, C]);
    const y = tf.tensor1d(labels, 'int32');
    const pr = tf.tensor2d(prior);
    const p = objective((t) => tf.reshape(t, [t.shape[0], C]), x, y, xa, pr, base);
    disposeParts(p);
    tf.dispose([x, xa, y, pr]);
  });
});
