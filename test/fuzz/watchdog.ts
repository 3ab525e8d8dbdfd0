/**
 * Runs inputs through the importer in a child process (child.ts) under a per-input time and memory watchdog:
 * the parent waits for each answer at most `timeoutMs` and reads the child's resident memory from
 * /proc/<pid>/statm every few milliseconds (V8's heap limit does not cover ArrayBuffers), killing it past
 * `maxRssBytes`. A killed or dead child is replaced for the next input.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** What happened to one input; only 'refused' and 'loaded' are acceptable. */
export type Outcome = 'refused' | 'loaded' | 'js-error' | 'hang' | 'memory' | 'crash';
export const OUTCOMES: readonly Outcome[] = ['refused', 'loaded', 'js-error', 'hang', 'memory', 'crash'];
export const acceptable = (o: Outcome): boolean => o === 'refused' || o === 'loaded';

export interface Result {
  outcome: Outcome;
  detail: string;
  /** Peak resident memory of the child seen while it worked on this input. */
  rss: number;
}

const CHILD = new URL('./child.js', import.meta.url).pathname;
const PAGE = 4096;

function rssOf(pid: number): number | undefined {
  try {
    return Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * PAGE;
  } catch {
    return undefined;
  }
}

export class Watchdog {
  private child: ChildProcess | undefined;
  private ready: Promise<void> | undefined;
  private nextId = 0;
  readonly timeoutMs: number;
  readonly maxRssBytes: number;
  private baseline = 0;

  private readonly hooks: boolean;

  /** `hooks`: the child misbehaves on request (child.ts), to test this watchdog. */
  constructor(opts: { timeoutMs?: number; maxRssBytes?: number; hooks?: boolean } = {}) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxRssBytes = opts.maxRssBytes ?? 1024 * 2 ** 20;
    this.hooks = opts.hooks ?? false;
  }

  private start(): Promise<void> {
    const child = fork(CHILD, [], {
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      execArgv: [`--max-old-space-size=${Math.round(this.maxRssBytes / 2 ** 20)}`],
      env: { ...process.env, IKL_BACKEND: 'cpu', IKL_FUZZ_HOOKS: this.hooks ? '1' : '0' },
    });
    child.stderr!.resume();
    this.child = child;
    this.ready = new Promise((resolve, reject) => {
      child.once('message', () => {
        this.baseline = rssOf(child.pid!) ?? 0;
        resolve();
      });
      child.once('exit', (code, signal) => reject(new Error(`fuzz child exited at start-up (${signal ?? code})`)));
    });
    return this.ready;
  }

  /** The outcome of loading `bytes`. */
  async run(bytes: Uint8Array): Promise<Result> {
    if (!this.child) await this.start();
    await this.ready;
    const child = this.child!;
    const id = this.nextId++;
    let stderr = '';
    const onErr = (d: Buffer): void => void (stderr = (stderr + d.toString()).slice(-2000));
    child.stderr!.on('data', onErr);
    let peak = 0;
    const result = await new Promise<Result>((resolve) => {
      const finish = (r: Result): void => {
        clearTimeout(timer);
        clearInterval(poll);
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(r);
      };
      const kill = (outcome: Outcome, detail: string): void => {
        child.off('exit', onExit);
        child.kill('SIGKILL');
        this.child = undefined;
        finish({ outcome, detail, rss: peak });
      };
      const onMessage = (m: { id: number; outcome: Outcome; detail: string; rss: number }): void => {
        if (m.id === id) finish({ outcome: m.outcome, detail: m.detail, rss: Math.max(peak, m.rss) });
      };
      const onExit = (code: number | null, signal: string | null): void => {
        this.child = undefined;
        const oom = /heap out of memory|Array buffer allocation failed|Invalid array length/i.test(stderr);
        finish({
          outcome: oom ? 'memory' : 'crash',
          detail: `child died (${signal ?? `exit ${code}`}): ${stderr.split('\n').slice(-3).join(' | ')}`,
          rss: peak,
        });
      };
      const timer = setTimeout(() => kill('hang', `no answer within ${this.timeoutMs} ms`), this.timeoutMs);
      const poll = setInterval(() => {
        const rss = rssOf(child.pid!);
        if (rss === undefined) return;
        peak = Math.max(peak, rss);
        if (rss > this.maxRssBytes) kill('memory', `resident memory ${Math.round(rss / 2 ** 20)} MiB > ${Math.round(this.maxRssBytes / 2 ** 20)} MiB`);
      }, 5);
      child.on('message', onMessage);
      child.on('exit', onExit);
      child.send({ id, bytes });
    });
    child.stderr?.off('data', onErr);
    return result;
  }

  /** Resident memory of the child when idle (its floor). */
  get idleRss(): number {
    return this.baseline;
  }

  stop(): void {
    this.child?.kill('SIGKILL');
    this.child = undefined;
  }
}
