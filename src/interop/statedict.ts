/**
 * From "what torch.load returns" to a flat state_dict: unwrap the containers people save
 * (`{'state_dict': ...}`, `{'model_state_dict': ...}`, `{'model': ...}`) and strip the prefixes of wrappers
 * (`module.` from DataParallel, `module.0.` / `0.` from a Sequential with the network first).
 */
import { isTorchTensor, type TorchTensor } from './formats.js';
import { quote } from './limits.js';
import type { PyValue } from './pickle.js';

export const CONTAINER_KEYS = ['state_dict', 'model_state_dict', 'model'] as const;

export interface FlatStateDict {
  tensors: Map<string, TorchTensor>;
  /** Where it was found: '' for a bare state_dict, else the container key. */
  container: string;
  /** The prefix stripped from every key ('' for none). */
  prefix: string;
}

const isStateDict = (v: unknown): v is Map<string, unknown> =>
  v instanceof Map && v.size > 0 && [...v.values()].every(isTorchTensor) && [...v.keys()].every((k) => typeof k === 'string');

/** The state_dict inside `value`, or a one-line problem. */
export function flattenStateDict(value: PyValue): FlatStateDict | { problem: string } {
  let container = '';
  let sd: unknown = value;
  if (!isStateDict(sd)) {
    if (!(value instanceof Map)) return { problem: 'the file holds no dict of tensors' };
    const key = CONTAINER_KEYS.find((k) => isStateDict(value.get(k)));
    if (!key) {
      const keys = [...value.keys()]
        .slice(0, 6)
        .map((k) => (typeof k === 'string' ? k : quote(k)))
        .join(', ');
      return { problem: `no state_dict found (top-level keys: ${keys}; expected tensors, or one of ${CONTAINER_KEYS.join('/')})` };
    }
    container = key;
    sd = value.get(key);
  }
  let tensors = sd as Map<string, TorchTensor>;
  let prefix = '';
  for (const p of ['module.', '0.']) {
    if ([...tensors.keys()].every((k) => k.startsWith(p))) {
      tensors = new Map([...tensors].map(([k, v]) => [k.slice(p.length), v]));
      prefix += p;
    }
  }
  return { tensors, container, prefix };
}
