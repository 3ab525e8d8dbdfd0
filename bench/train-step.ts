/**
 * Images/s of one full training step (attack, AWP, objective, update) on the selected backend.
 *   node dist/bench/train-step.js [--models preact-resnet-18,wrn-34-10] [--batch 128] [--steps 3]
 *                                 [--objectives ikl-at,trades,pgd-at] [--attack-steps 5] [--no-awp] [--phases]
 * Data are random images (speed only). One warm-up step per setting is not timed (graph/kernel set-up); one more,
 * also untimed, counts tfjs kernel dispatches and host syncs (bench/counters.ts). Peak RSS is the process's so far.
 * --phases splits that counted step into its phases (kernels, syncs and ms each) by marking the entry and exit of
 * the trainer's parts (class-weight gather, AWP, optimiser, weight average): the attack is what runs between the
 * gather and the AWP proxy step, the loss pass (two forwards, loss, backward, the figures' sync) between the AWP
 * perturbation and the optimiser.
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.js';
import { parseConfig } from '../src/config/index.js';
import { createTrainer, disposeTrainer, trainStep } from '../src/train/step.js';
import { counts, countOf, installCounters, peakRssGb, type Counts } from './counters.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const models = flag('models', 'preact-resnet-18').split(',');
const batch = Number(flag('batch', '128'));
const steps = Number(flag('steps', '3'));
const objectives = flag('objectives', 'ikl-at,trades,pgd-at').split(',');
const attackSteps = Number(flag('attack-steps', '5'));
const awp = !process.argv.includes('--no-awp');
const phases = process.argv.includes('--phases');

interface Mark extends Counts {
  name: string;
  ms: number;
}

/** Wraps obj[method] so each call records a mark at its entry and exit. */
function markCalls(marks: Mark[], obj: object | undefined, method: string, name: string): void {
  if (!obj) return;
  const o = obj as Record<string, (...a: unknown[]) => unknown>;
  const orig = o[method]!.bind(obj);
  const mark = (n: string): void => void marks.push({ name: n, ms: performance.now(), ...counts() });
  o[method] = (...a: unknown[]) => {
    mark(`${name}>`);
    const r = orig(...a);
    mark(`<${name}`);
    return r;
  };
}

/** Kernels, syncs and ms between consecutive marks, named by the interval's ends. */
function phaseTable(all: Mark[]): string {
  const marks = all.slice(0, all.findIndex((m) => m.name === 'end') + 1);
  const rows: string[] = [];
  const label = (a: string, b: string): string => {
    if (a.endsWith('>')) return a.slice(0, -1);
    if (a === '<classWeights.gather' && b === 'awp.computeDirections>') return 'attack (executor + PGD)';
    if (a === 'start' && b === 'awp.computeDirections>') return 'attack (executor + PGD)';
    if (a === '<awp.perturb' || (a === 'start' && b === 'optimizer.step>') || (a === '<classWeights.gather' && b === 'optimizer.step>')) {
      return 'loss pass (forwards, loss, backward, figures)';
    }
    return `${a} .. ${b}`;
  };
  for (let i = 1; i < marks.length; i++) {
    const a = marks[i - 1]!;
    const b = marks[i]!;
    const k = b.kernels - a.kernels;
    if (k === 0 && b.syncs === a.syncs) continue;
    rows.push(
      `    ${label(a.name, b.name).padEnd(46)} ${String(k).padStart(6)} kernels ${String(b.syncs - a.syncs).padStart(3)} syncs ${(b.ms - a.ms).toFixed(1).padStart(8)} ms`,
    );
  }
  return rows.join('\n');
}

const info = await initBackend();
installCounters();
console.log(`backend ${info.name} (${info.package}, TF ${info.tfVersion}), devices ${info.devices.join(', ')}`);
console.log(`batch ${batch}, ${attackSteps}-step attack, AWP ${awp ? 'on' : 'off'}, ${steps} timed steps after 1 warm-up`);

for (const arch of models) {
  for (const type of objectives) {
    const config = parseConfig(
      {
        data: { dataset: 'synthetic', batchSize: batch },
        model: { arch, numClasses: 10 },
        objective: { type },
        attack: { steps: attackSteps, objective: type === 'pgd-at' ? 'ce' : 'kl' },
        awp: { enabled: awp, warmupEpoch: 1 },
      },
      'bench',
    );
    const t = createTrainer(config);
    const x = tf.randomUniform([batch, 32, 32, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const y = tf.tensor1d(
      Array.from({ length: batch }, (_, i) => i % 10),
      'int32',
    );
    const params = { lr: 0.1, epsilon: 8 / 255, stepSize: 4 / 255, awp, seed: 0 };
    trainStep(t, x, y, params);
    const marks: Mark[] = [];
    if (phases) {
      markCalls(marks, t.classWeights, 'gather', 'classWeights.gather');
      markCalls(marks, t.awp, 'computeDirections', 'awp.computeDirections');
      markCalls(marks, t.awp, 'perturb', 'awp.perturb');
      markCalls(marks, t.awp, 'restore', 'awp.restore');
      markCalls(marks, t.optimizer, 'step', 'optimizer.step');
      markCalls(marks, t.classWeights, 'accumulate', 'classWeights.accumulate');
      markCalls(marks, t.weightAverage, 'update', 'weightAverage.update');
      marks.push({ name: 'start', ms: performance.now(), ...counts() });
    }
    const c = countOf(() => trainStep(t, x, y, params));
    if (phases) marks.push({ name: 'end', ms: performance.now(), ...counts() });
    const before = tf.memory().numTensors;
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) trainStep(t, x, y, { ...params, seed: s + 1 });
    const sec = (performance.now() - t0) / 1000;
    const leak = tf.memory().numTensors - before;
    console.log(
      `${arch.padEnd(18)} ${type.padEnd(8)} batch ${batch}: ${((batch * steps) / sec).toPrecision(3)} images/s ` +
        `(${(sec / steps).toFixed(2)} s/step, ${c.kernels} kernels and ${c.syncs} syncs per step, ` +
        `peak RSS ${peakRssGb().toFixed(2)} GB${leak !== 0 ? `, TENSOR LEAK ${leak}` : ''})`,
    );
    if (phases) console.log(phaseTable(marks));
    tf.dispose([x, y]);
    disposeTrainer(t);
  }
}
