#!/usr/bin/env node
// Runs the compiled test files (dist/test/**/*.test.js) with Node's built-in test runner.
// Extra arguments are name filters: `npm test -- losses attacks` runs only files whose path contains them.
// The backend comes from $IKL_BACKEND (auto|tensorflow|cpu); tests needing the native backend skip on cpu.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const dir = join(root, 'dist', 'test');
const filters = process.argv.slice(2);

function walk(d) {
  return readdirSync(d).flatMap((n) => {
    const p = join(d, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.test.js') ? [p] : [];
  });
}
const files = walk(dir)
  .filter((f) => filters.length === 0 || filters.some((s) => relative(dir, f).includes(s)))
  .sort();
if (files.length === 0) {
  console.error(`run-tests: no test files match ${filters.join(' ') || '(all)'} under ${dir}`);
  process.exit(1);
}
console.error(`run-tests: ${files.length} files, backend ${process.env.IKL_BACKEND ?? 'auto'}`);
// One file at a time: the machines have 2 cores and TensorFlow already uses both.
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
