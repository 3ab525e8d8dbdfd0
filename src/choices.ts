/**
 * The choices of the two process-level settings, kept apart from backend.ts and log.ts so that the config schema
 * and the CLIs can name them without loading tfjs or pino.
 */

/** tfjs backends (`--backend`, `run.backend`, `$IKL_BACKEND`). */
export const BACKEND_CHOICES = ['auto', 'tensorflow', 'gpu', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

/** Log formats on stderr (`--log-format`, `run.logFormat`). */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
