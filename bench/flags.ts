/** The benchmarks' command lines: `--name value` pairs, and integer flags with a default. */
import { InputError } from '../src/errors.js';

/** `--name value` pairs as a map; with `known`, any other flag is refused by name. */
export function flags(argv: string[], known?: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i]!;
    const v = argv[i + 1];
    if (!k.startsWith('--') || v === undefined) throw new InputError(`${k}: expected --flag value pairs`);
    m.set(k.slice(2), v);
  }
  if (known) for (const k of m.keys()) if (!known.includes(k)) throw new InputError(`--${k}: unknown flag (expected ${known.map((n) => `--${n}`).join(', ')})`);
  return m;
}

/** Integer flag `name` (at least `min`), or `fallback` when absent. */
export function int(f: Map<string, string>, name: string, fallback: number, min = 1): number {
  const v = f.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InputError(`--${name}: expected an integer >= ${min}, got '${v}'`);
  return n;
}
