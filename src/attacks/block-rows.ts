import type { ModelFn } from './types.js';

/**
 * Activation memory one block of an attack's units (APGD-T's and FAB-T's target classes and restarts, run as one
 * batch of points × units) may hold: 256 MB of forward activations, a few times that with the backward. Within it,
 * bigger blocks are faster: per-op overhead is paid once per block, and on the 2-core CPU the cost per row of the
 * quickstart CNN's input gradient falls from 374 µs at 96 rows to 251 µs at 864 (`bench/apgd-rows.ts`).
 */
export const BLOCK_ACTIVATION_BYTES = 256 * 2 ** 20;

/**
 * Default rows of one block: as many as BLOCK_ACTIVATION_BYTES holds for this model, never fewer than the B input
 * points (the caller sized its batch to fit); `fallback` when the model does not say its activation size.
 */
export function blockRows(model: ModelFn, points: number, fallback: number): number {
  const perRow = model.activationBytesPerRow;
  if (perRow === undefined || !(perRow > 0)) return fallback;
  return Math.max(points, Math.floor(BLOCK_ACTIVATION_BYTES / perRow), 1);
}
