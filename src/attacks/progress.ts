/**
 * Resumable progress inside one attack call. An attack is a sequence of *units* whose results it folds into its
 * own state: a restart of APGD-CE or PGD, a (target class, restart) pair of APGD-T and FAB-T, 250 iterations of a
 * Square run. Every unit's random choices derive from (seed, unit) (Square: from its stream's state, saved with
 * the unit), so a call resumed after unit u from the state saved there gives the same result as an
 * uninterrupted call. An attack that takes `progress` calls `unitDone` after each unit and, when
 * `restored` is given, starts after the units it records.
 *
 * The unit is the contract: code that batches several units at once (e.g. APGD-T's target classes run
 * together) keeps it by calling `unitDone` once per unit finished, or once per batch with `units` counting
 * every unit in it; a resume then starts after the last recorded unit.
 *
 * The caller decides when to persist (src/eval/run.ts writes at most every `--save-every` seconds), so
 * `unitDone` receives a function that reads the state, called only when it is written.
 */

/** The arrays a unit state is made of (host copies, owned by the receiver). */
export type StateArray = Float32Array | Float64Array | Int32Array | Uint8Array;

/** An attack's state after `units` finished units. */
export interface AttackState {
  units: number;
  arrays: Record<string, StateArray>;
}

export interface AttackProgress {
  /** The state an interrupted call of the same attack on the same inputs saved; undefined: start fresh. */
  restored?: AttackState;
  /** Called after every finished unit; `read()` copies the attack's state (call it only to persist it). */
  unitDone(units: number, read: () => Promise<AttackState>): Promise<void>;
}

const KINDS = { f32: Float32Array, f64: Float64Array, i32: Int32Array, u8: Uint8Array } as const;
type Kind = keyof typeof KINDS;

/** An AttackState as JSON (base64 of the little-endian bytes). */
export interface AttackStateJson {
  units: number;
  arrays: Record<string, { kind: Kind; base64: string }>;
}

function kindOf(a: StateArray): Kind {
  if (a instanceof Float32Array) return 'f32';
  if (a instanceof Float64Array) return 'f64';
  if (a instanceof Int32Array) return 'i32';
  return 'u8';
}

export function attackStateToJson(s: AttackState): AttackStateJson {
  const arrays: AttackStateJson['arrays'] = {};
  for (const [k, a] of Object.entries(s.arrays)) arrays[k] = { kind: kindOf(a), base64: Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64') };
  return { units: s.units, arrays };
}

/** The inverse of attackStateToJson; throws on a malformed record (the caller names the file). */
export function attackStateFromJson(j: AttackStateJson): AttackState {
  if (!j || !Number.isInteger(j.units) || j.units < 0 || typeof j.arrays !== 'object' || j.arrays === null) throw new Error('malformed attack state');
  const arrays: Record<string, StateArray> = {};
  for (const [k, { kind, base64 }] of Object.entries(j.arrays)) {
    const Ctor = KINDS[kind];
    if (!Ctor || typeof base64 !== 'string') throw new Error(`malformed attack state array '${k}'`);
    const bytes = Buffer.from(base64, 'base64');
    if (bytes.byteLength % Ctor.BYTES_PER_ELEMENT !== 0) throw new Error(`malformed attack state array '${k}'`);
    // Copied into a fresh, aligned buffer.
    const out = new Ctor(bytes.byteLength / Ctor.BYTES_PER_ELEMENT);
    new Uint8Array(out.buffer).set(bytes);
    arrays[k] = out;
  }
  return { units: j.units, arrays };
}

/** The restored array `name` with `length` elements of the expected type, or an error naming what differs. */
export function restoredArray<T extends StateArray>(s: AttackState, name: string, Ctor: { new (n: number): T; name: string }, length: number): T {
  const a = s.arrays[name];
  if (!(a instanceof Ctor) || a.length !== length) {
    throw new Error(`attack state: '${name}' expected a ${Ctor.name} of ${length} elements, got ${a ? `${a.constructor.name} of ${a.length}` : 'none'}`);
  }
  return a as T;
}
