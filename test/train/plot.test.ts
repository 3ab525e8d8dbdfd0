import { test } from 'node:test';
import assert from 'node:assert/strict';
import { curvesSvg } from '../../src/train/plot.js';

test('curves.svg: one path per series with data, points placed by value, text escaped', () => {
  const svg = curvesSvg(
    [
      { epoch: 1, lossTotal: 2, lossNatural: 1.5, lossRobust: 0.5, valCleanAcc: 0.2, valRobustAcc: null },
      { epoch: 2, lossTotal: 1, lossNatural: 0.8, lossRobust: 0.2, valCleanAcc: 0.4, valRobustAcc: 0.1 },
    ],
    'run <a&b>',
  );
  assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.ok(svg.trimEnd().endsWith('</svg>'));
  assert.equal((svg.match(/<path /g) ?? []).length, 5, '3 loss series + val clean + val PGD (no lr or ε recorded: no schedule curve)');
  assert.ok(svg.includes('run &lt;a&amp;b&gt;') && !svg.includes('<a&b>'));
  // The accuracy panel spans [0, 1]: an accuracy of 0.4 sits 40% of the way up (plot area y 28..260).
  const paths = [...svg.matchAll(/<path d="([^"]+)"/g)].map((m) => m[1]!);
  const valClean = paths[3]!.split(' ').map((p) => Number(p.slice(1).split(',')[1]));
  assert.ok(Math.abs(valClean[1]! - (28 + 0.6 * 232)) < 0.1, `y of 0.4: ${valClean[1]}`);
});

test("curves.svg draws the worst class's validation PGD accuracy", () => {
  const svg = curvesSvg([
    { epoch: 1, lossTotal: 2, valRobustAcc: 0.3, valWorstClassRobustAcc: 0.1 },
    { epoch: 2, lossTotal: 1, valRobustAcc: 0.4, valWorstClassRobustAcc: 0.25 },
  ]);
  assert.ok(svg.includes('val PGD, worst class'));
  const paths = [...svg.matchAll(/<path d="([^"]+)"[^>]*stroke="([^"]+)"/g)];
  const worst = paths.find((m) => m[2] === '#8c564b');
  assert.ok(worst, 'a path in the worst-class colour');
  const ys = worst[1]!.split(' ').map((p) => Number(p.slice(1).split(',')[1]));
  assert.ok(Math.abs(ys[1]! - (28 + 0.75 * 232)) < 0.1, `y of 0.25: ${ys[1]}`);
});

test('curves.svg: a schedule panel draws lr and ε as fractions of their maximum, named in the legend', () => {
  const svg = curvesSvg([
    { epoch: 1, lossTotal: 2, lr: 0.1, epsilon: 4 / 255 },
    { epoch: 2, lossTotal: 1, lr: 0.2, epsilon: 8 / 255 },
    { epoch: 3, lossTotal: 1, lr: 0.05, epsilon: 8 / 255 },
  ]);
  assert.ok(svg.includes('lr (max 0.2)') && svg.includes('ε (max 8/255)'), 'legend with the maxima');
  const paths = [...svg.matchAll(/<path d="([^"]+)"/g)].map((m) => m[1]!);
  assert.equal(paths.length, 3, 'total loss, lr, ε');
  // Plot area y 28..260: a value of 0.5 of the maximum sits half-way, the maximum at the top.
  const ys = (d: string): number[] => d.split(' ').map((p) => Number(p.slice(1).split(',')[1]));
  const lr = ys(paths[1]!);
  assert.ok(Math.abs(lr[0]! - (28 + 0.5 * 232)) < 0.1 && Math.abs(lr[1]! - 28) < 0.1 && Math.abs(lr[2]! - (28 + 0.75 * 232)) < 0.1, lr.join(','));
  const eps = ys(paths[2]!);
  assert.ok(Math.abs(eps[0]! - (28 + 0.5 * 232)) < 0.1 && Math.abs(eps[2]! - 28) < 0.1, eps.join(','));
});
