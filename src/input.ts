/** Checks of user input shared by every layer: each failure is a one-line InputError naming where the value came from. */
import { InputError } from './errors.js';

/** `value` if it is one of `values`, else InputError "<source>: expected one of a|b|c, got 'x'". */
export function oneOf<const T extends string>(values: readonly T[], value: unknown, source: string): T {
  if ((values as readonly unknown[]).includes(value)) return value as T;
  throw new InputError(`${source}: expected one of ${values.join('|')}, got '${String(value)}'`);
}

/** An integer >= min, else InputError "<who>: <field> expected an integer >= min, got v". */
export function checkCount(who: string, field: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new InputError(`${who}: ${field} expected an integer >= ${min}, got ${String(v)}`);
  }
  return v;
}
