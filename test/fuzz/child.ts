/**
 * The fuzzer's child process: loads each input it is sent the way the importer does (parseStateDict, then every
 * tensor's read(), whose FormatErrors importIntoModel turns into InputErrors) and reports the outcome. It runs
 * under the parent's watchdog (watchdog.ts), which kills it on a hang or a memory blow-up.
 */
import { InputError, printable } from '../../src/errors.js';
import { FormatError, parseStateDict } from '../../src/interop/index.js';
import type { Outcome } from './watchdog.js';

/** Misbehaviour on request, so that a test can check the watchdog's classes (only with IKL_FUZZ_HOOKS=1). */
function hook(buf: Uint8Array): void {
  const text = new TextDecoder().decode(buf.subarray(0, 40));
  if (process.env.IKL_FUZZ_HOOKS !== '1' || !text.startsWith('IKL-FUZZ-TEST:')) return;
  const what = text.slice('IKL-FUZZ-TEST:'.length);
  if (what === 'hang') for (;;);
  if (what === 'memory') {
    const held: Uint8Array[] = [];
    for (;;) held.push(new Uint8Array(64 * 2 ** 20).fill(1));
  }
  if (what === 'crash') process.kill(process.pid, 'SIGSEGV');
  if (what === 'throw') throw new TypeError('a JavaScript error on request');
}

export function load(buf: Uint8Array): { outcome: Outcome; detail: string } {
  try {
    hook(buf);
    const flat = parseStateDict(buf, 'input');
    let n = 0;
    for (const [key, t] of flat.tensors) {
      const values = t.read();
      const want = t.shape.reduce((a, b) => a * b, 1);
      if (values.length !== want) return { outcome: 'js-error', detail: `tensor ${printable(key, 80)}: ${values.length} values for shape [${t.shape}]` };
      n++;
    }
    return { outcome: 'loaded', detail: `${n} tensors` };
  } catch (e) {
    const refusal = e instanceof InputError || e instanceof FormatError;
    const msg = e instanceof Error ? e.message : String(e);
    if (!refusal) return { outcome: 'js-error', detail: printable(`${(e as Error)?.name}: ${msg}`, 300) };
    // A refusal is clean only if it prints as one line without control characters (printable leaves it unchanged).
    if (printable(msg) !== msg) return { outcome: 'js-error', detail: `refusal with raw control characters: ${printable(msg, 300)}` };
    return { outcome: 'refused', detail: msg.slice(0, 1000) };
  }
}

if (process.send) {
  process.on('message', (m: { id: number; bytes: Uint8Array }) => {
    const r = load(new Uint8Array(m.bytes));
    process.send!({ id: m.id, ...r, rss: process.memoryUsage().rss });
  });
  process.send({ ready: true });
}
