/**
 * Numbers as people write them in configs and flags: '0.031', '8/255', '2e-4'. Budgets in this field are
 * quoted as fractions of 255, and a rounded decimal (0.031 vs 8/255) silently changes the threat model.
 */
import { InputError } from '../errors.js';

/** The number a text denotes (decimal, exponent or `a/b`), or undefined when it is not one. */
export function parseNumberText(text: string): number | undefined {
  const s = text.trim();
  const frac = /^([+-]?\d+(?:\.\d+)?)\s*\/\s*(\d+(?:\.\d+)?)$/.exec(s);
  let n: number;
  if (frac) n = Number(frac[1]) / Number(frac[2]);
  else if (/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(s)) n = Number(s);
  else return undefined;
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Parses a number given as a decimal ('0.031'), a fraction ('8/255') or an integer. `source` names the flag or
 * config key in the error.
 */
export function parseNumberExpr(value: string | number, source: string): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value)) return value;
    throw new InputError(`${source}: expected a finite number, got ${value}`);
  }
  const n = parseNumberText(value);
  if (n === undefined) throw new InputError(`${source}: expected a number or a fraction like 8/255, got '${value}'`);
  return n;
}

/**
 * The one batch-size rule of configs (`data.batchSize`) and flags (`--batch-size`): a whole number in
 * [1, MAX_BATCH_SIZE]. The bound is far above what fits in memory for CIFAR-sized images on any device, and
 * catches a slip such as 1e9 before it becomes an allocation failure deep in TensorFlow.
 */
export const MAX_BATCH_SIZE = 65_536;
export const BATCH_SIZE_RULE = `expected a whole number in [1, ${MAX_BATCH_SIZE}]`;

export function parseBatchSize(value: string, source: string): number {
  const n = parseNumberText(value);
  if (n === undefined || !Number.isInteger(n) || n < 1 || n > MAX_BATCH_SIZE) {
    throw new InputError(`${source}: ${BATCH_SIZE_RULE}, got ${n === undefined ? `'${value}'` : n}`);
  }
  return n;
}
