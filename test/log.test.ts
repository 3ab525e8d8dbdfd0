import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prettyLine, roundNumbers } from '../src/log.js';

test('log numbers: fractions rounded to 6 significant digits, integers and non-numbers kept, nested too', () => {
  assert.deepEqual(roundNumbers({ a: 0.03137254901960784, b: 1796692021254, c: 'x', d: [1 / 3, 2], e: { f: 352.9893781139915 }, g: null }), {
    a: 0.0313725,
    b: 1796692021254,
    c: 'x',
    d: [0.333333, 2],
    e: { f: 352.989 },
    g: null,
  });
  assert.equal(roundNumbers(Number.NaN), Number.NaN);
});

test('pretty logs: an epoch record is one summary line; other entries are the message and key=value fields', () => {
  const epoch = {
    level: 30,
    time: 1,
    name: 'ikl-train',
    msg: 'epoch 3/10',
    epoch: 3,
    lr: 0.015,
    epsilon: 8 / 255,
    lossTotal: 3.3229473,
    trainCleanAcc: 0.638,
    trainAdvAcc: 0.549,
    valCleanAcc: 0.55,
    valRobustAcc: 0.195,
    waCleanAcc: null,
    waRobustAcc: null,
    epochSeconds: 6.23,
    best: true,
  };
  assert.equal(prettyLine(epoch), 'epoch 3/10 | loss 3.323 | train 63.8%/54.9% | val 55.0%/19.5% | lr 0.015 | eps 8/255 | 6.23 s | best');
  assert.equal(prettyLine({ level: 30, time: 1, pid: 2, hostname: 'h', msg: 'training', runDir: 'r', resume: false }), 'training runDir=r resume=false');
  assert.ok(!prettyLine(epoch).includes('\n'));
});
