/** Which keys of two configs differ: what a refused `--resume` names, so the user knows what changed. */
import { canonicalJson, PRESENTATION_KEYS } from './resolve.js';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Dotted paths of the leaves that differ between `a` and `b` (a key missing on one side counts), sorted,
 * without the presentation keys that the config hash leaves out (run.logFormat, run.progress, run.backend).
 */
export function configDiff(a: unknown, b: unknown, prefix: string[] = []): string[] {
  if (!isObject(a) || !isObject(b)) return canonicalJson(a) === canonicalJson(b) ? [] : [prefix.join('.') || '(the whole config)'];
  const out: string[] = [];
  for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    if (prefix.length === 1 && PRESENTATION_KEYS[prefix[0]!]?.includes(k)) continue;
    out.push(...configDiff(a[k], b[k], [...prefix, k]));
  }
  return out;
}

/** "a.b (3 → 4), c.d (…)" for a message: at most `max` keys with their two values. */
export function describeConfigDiff(saved: unknown, wanted: unknown, max = 5): string {
  const keys = configDiff(saved, wanted);
  const at = (o: unknown, path: string): string => {
    let v: unknown = o;
    for (const k of path.split('.')) v = isObject(v) ? v[k] : undefined;
    const s = v === undefined ? 'unset' : JSON.stringify(v);
    return s.length > 30 ? `${s.slice(0, 27)}...` : s;
  };
  const shown = keys.slice(0, max).map((k) => `${k} ${at(saved, k)} -> ${at(wanted, k)}`);
  return `${shown.join(', ')}${keys.length > max ? ` and ${keys.length - max} more` : ''}`;
}
