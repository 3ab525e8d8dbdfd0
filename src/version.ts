/** The package's own version (package.json), for `--version` and the reports. */
import { readFileSync } from 'node:fs';

let cached: string | undefined;

/** The version field of this package's package.json ('unknown' if it cannot be read). Compiled to dist/src/. */
export function packageVersion(): string {
  if (cached === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
      cached = typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      cached = 'unknown';
    }
  }
  return cached;
}
