/**
 * Logging: pino NDJSON on stderr, human-readable when stderr is a TTY or format 'pretty'.
 * stdout stays free for machine-readable output (ikl-eval's JSON report).
 * Numbers are rounded to 6 significant digits (a float's 17 say nothing more about a loss or an accuracy);
 * integers are kept. With `file`, every line is also appended to that file as NDJSON (the run's train.log).
 * Pretty output is one line per entry: the message, then the fields as key=value (an epoch record as a summary).
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

import type { LogFormat } from './choices.js';
export { LOG_FORMATS, type LogFormat } from './choices.js';
export type { Logger };

/** Significant digits kept in logged numbers. */
export const LOG_DIGITS = 6;

/** `value` with every non-integer number rounded to LOG_DIGITS significant digits (objects and arrays copied). */
export function roundNumbers(value: unknown): unknown {
  if (typeof value === 'number') return Number.isInteger(value) || !Number.isFinite(value) ? value : Number(value.toPrecision(LOG_DIGITS));
  if (Array.isArray(value)) return value.map(roundNumbers);
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, roundNumbers(v)]));
  }
  return value;
}

/** pino's own fields, not shown again in a pretty line. */
const OWN_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'v']);

const pct = (v: unknown): string => (typeof v === 'number' ? `${(100 * v).toFixed(1)}%` : '-');
const num = (v: unknown, digits = 4): string => (typeof v === 'number' ? String(Number(v.toPrecision(digits))) : '-');

/** An epoch record (src/train/trainer.ts) as one line: what the README's quick start shows. */
function epochLine(msg: string, r: Record<string, unknown>): string {
  const parts = [
    msg,
    `loss ${num(r.lossTotal)}`,
    `train ${pct(r.trainCleanAcc)}/${pct(r.trainAdvAcc)}`,
    r.valCleanAcc !== null && r.valCleanAcc !== undefined ? `val ${pct(r.valCleanAcc)}/${pct(r.valRobustAcc)}` : '',
    r.waCleanAcc !== null && r.waCleanAcc !== undefined ? `wa ${pct(r.waCleanAcc)}/${pct(r.waRobustAcc)}` : '',
    `lr ${num(r.lr, 3)}`,
    typeof r.epsilon === 'number' ? `eps ${num(r.epsilon * 255, 3)}/255` : '',
    `${num(r.epochSeconds, 3)} s`,
    r.best === true ? 'best' : '',
  ];
  return parts.filter((p) => p !== '').join(' | ');
}

/** One pretty line: the message and its fields; clean/robust pairs are shown as clean/robust. */
export function prettyLine(log: Record<string, unknown>): string {
  const msg = String(log.msg ?? '');
  if (typeof log.epoch === 'number' && 'lossTotal' in log) return epochLine(msg, log);
  const fields = Object.entries(log)
    .filter(([k, v]) => !OWN_FIELDS.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return fields.length === 0 ? msg : `${msg} ${fields.join(' ')}`;
}

export function createLogger(opts: { format?: LogFormat; level?: string; name?: string; file?: string } = {}): Logger {
  const format = opts.format ?? 'auto';
  const usePretty = format === 'pretty' || (format === 'auto' && process.stderr.isTTY === true);
  const level = opts.level ?? process.env.IKL_LOG_LEVEL ?? 'info';
  const base = { level, name: opts.name, formatters: { log: (o: Record<string, unknown>) => roundNumbers(o) as Record<string, unknown> } };
  const console = usePretty
    ? pretty({
        destination: 2,
        sync: true,
        colorize: process.stderr.isTTY === true,
        ignore: 'pid,hostname',
        hideObject: true,
        messageFormat: (log) => prettyLine(log),
      })
    : pino.destination({ dest: 2, sync: true });
  if (opts.file === undefined) return pino(base, console);
  const file = pino.destination({ dest: opts.file, mkdir: true, append: true, sync: true });
  return pino(
    base,
    pino.multistream([
      { level: level as pino.Level, stream: console },
      { level: level as pino.Level, stream: file },
    ]),
  );
}

/** A logger that drops everything, for library calls made without one. */
export const silentLogger: Logger = pino({ level: 'silent' });
