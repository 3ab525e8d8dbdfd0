/**
 * The budgets of the weight-file readers. A weight file is untrusted input: every count it contains (zip entries,
 * string lengths, tensor sizes) is checked against what the file can hold and against these limits before anything
 * is allocated, and every walk over what it builds is iterative, so a file decides neither how long the reader runs
 * nor how much memory it takes nor how deep the JS stack grows. The limits are far above what a state_dict needs
 * (a WRN-70-16 checkpoint: ~900 tensors, ~5,000 pickle nodes, nesting 4).
 */
import { printable } from '../errors.js';

export const LIMITS = {
  /** Values the pickle VM may create or push (each opcode makes at most a few). */
  pickleNodes: 20_000_000,
  /** Nesting of containers (and of MARKs in the pickle). */
  depth: 200,
  /** Entries of a zip central directory. */
  zipEntries: 200_000,
  /** Bytes a reader may create from a file (inflated zip members, decoded tensors): this many times the file size ... */
  copiedPerFileByte: 16,
  /** ... plus this many bytes. */
  copiedBase: 256 * 2 ** 20,
  /** Dimensions of one tensor. */
  tensorRank: 64,
  /** Bytes of a safetensors JSON header (the format's own limit). */
  safetensorsHeader: 100_000_000,
} as const;

/** A limit of LIMITS exceeded, or a count in the file that the file cannot hold. */
export class LimitError extends Error {}

/** Counts what a reader creates from one file; throws LimitError as soon as a budget is spent. */
export class Budget {
  private nodes = 0;
  private copied = 0;
  readonly maxCopied: number;

  constructor(fileBytes: number) {
    this.maxCopied = LIMITS.copiedBase + LIMITS.copiedPerFileByte * fileBytes;
  }

  /** `n` more values built (pickle stack pushes, container elements, walked nodes). */
  node(n = 1): void {
    this.nodes += n;
    if (this.nodes > LIMITS.pickleNodes) throw new LimitError(`more than ${LIMITS.pickleNodes} values built (a memo-shared or looping structure?)`);
  }

  /** `n` more bytes allocated for `what`. */
  copy(n: number, what: string): void {
    this.copied += n;
    if (!(n >= 0) || this.copied > this.maxCopied) {
      throw new LimitError(
        `${what} would bring the bytes read from the file to ${this.copied}, more than ${this.maxCopied} (${LIMITS.copiedPerFileByte}x the file + ${LIMITS.copiedBase / 2 ** 20} MiB)`,
      );
    }
  }
}

/**
 * A value from a file, quoted for a one-line message (escaped, at most 120 characters). Containers are named, not
 * printed (String() of a memo-shared list expands it exponentially), and huge integers are not converted to decimal.
 */
export function quote(v: unknown): string {
  if (typeof v === 'object' && v !== null) return `<${Array.isArray(v) ? 'list' : v instanceof Map ? 'dict' : 'object'}>`;
  if (typeof v === 'bigint' && (v > 2n ** 64n || v < -(2n ** 64n))) return '<integer of more than 64 bits>';
  return `'${printable(String(v), 120)}'`;
}
