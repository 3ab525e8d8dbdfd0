/**
 * Logging: pino NDJSON on stderr, human-readable when stderr is a TTY or format 'pretty'.
 * stdout stays free for machine-readable output (ikl-eval's JSON report).
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

import type { LogFormat } from './choices.js';
export { LOG_FORMATS, type LogFormat } from './choices.js';
export type { Logger };

export function createLogger(opts: { format?: LogFormat; level?: string; name?: string } = {}): Logger {
  const format = opts.format ?? 'auto';
  const usePretty = format === 'pretty' || (format === 'auto' && process.stderr.isTTY === true);
  const base = { level: opts.level ?? process.env.IKL_LOG_LEVEL ?? 'info', name: opts.name };
  if (usePretty) {
    return pino(base, pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY === true, ignore: 'pid,hostname' }));
  }
  return pino(base, pino.destination({ dest: 2, sync: true }));
}

/** A logger that drops everything, for library calls made without one. */
export const silentLogger: Logger = pino({ level: 'silent' });
