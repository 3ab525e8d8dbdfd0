/** Spawns the tasks of a multi-process test on 127.0.0.1 (free ports, TF_CONFIG) and always stops them. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/** Ports the OS says are free on 127.0.0.1 (closed again before the tasks bind them). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<import('node:net').Server>((resolve) => {
          const s = createServer();
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

export interface TaskResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node script ...args` as n tasks of one cluster; resolves when all have exited. Every task is killed after
 * `limitMs` (the test then fails on its exit code) and when the caller's test ends.
 */
export async function runTasks(n: number, script: string, args: string[], limitMs: number, env: NodeJS.ProcessEnv = {}): Promise<TaskResult[]> {
  const ports = await freePorts(n);
  const workers = ports.map((p) => `127.0.0.1:${p}`);
  const children: ChildProcess[] = [];
  const timer = setTimeout(() => children.forEach((c) => c.kill('SIGKILL')), limitMs);
  try {
    return await Promise.all(
      workers.map((_, rank) => {
        const child = spawn(process.execPath, [script, ...args], {
          env: {
            ...process.env,
            TF_CPP_MIN_LOG_LEVEL: '2',
            ...env,
            TF_CONFIG: JSON.stringify({ cluster: { worker: workers }, task: { type: 'worker', index: rank } }),
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        children.push(child);
        let stdout = '';
        let stderr = '';
        child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
        return new Promise<TaskResult>((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
      }),
    );
  } finally {
    clearTimeout(timer);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}

/** The last JSON line a task printed. */
export function lastJson(r: TaskResult): Record<string, unknown> {
  const line = r.stdout
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
  if (!line) throw new Error(`task printed no JSON (exit ${r.code}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(line) as Record<string, unknown>;
}
