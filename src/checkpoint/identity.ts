/**
 * The identity of a model: a sha256 over its weights, the same whatever path the checkpoint is reached by
 * (run/wa, an absolute path, a copy made with `cp -rL`). Paths cannot identify a model: `last`, `best` and `wa`
 * are symlinks that move while training continues, so two evaluations "of run/wa" may be of different weights.
 *
 * Defined from what checkpoint.json already records and readCheckpoint verifies: the sha256 of weights.bin,
 * plus the weight manifest of model.json (names, shapes, dtypes, in file order), which says how those bytes are
 * cut into tensors. The rest of model.json (the tfjs version that wrote it, layer settings) is left out: the
 * architecture is recorded and compared separately (`arch`), and a re-save by another tfjs version must not
 * change the identity of unchanged weights.
 */
import { createHash } from 'node:crypto';

/** Tag hashed in front of the content, so a future change of the definition cannot collide with this one. */
export const WEIGHTS_ID_VERSION = 'ikl-at-weights-v1';

interface ManifestEntry {
  name: string;
  shape: number[];
  dtype: string;
}

/**
 * sha256 (hex) of the model's weights: `weightsFileSha256` is the sha256 of weights.bin, `manifest` the
 * `weightsManifest` of model.json.
 */
export function weightsIdentity(weightsFileSha256: string, manifest: ReadonlyArray<{ weights: ReadonlyArray<ManifestEntry> }>): string {
  const specs = manifest.flatMap((g) => g.weights.map((w) => ({ name: w.name, shape: [...w.shape], dtype: w.dtype })));
  return createHash('sha256')
    .update(`${WEIGHTS_ID_VERSION}\n${JSON.stringify(specs)}\n${weightsFileSha256}`)
    .digest('hex');
}

/** The short form used in messages: the first 12 hex digits. */
export function shortId(id: string): string {
  return `${id.slice(0, 12)}…`;
}
