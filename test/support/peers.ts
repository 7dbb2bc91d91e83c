import { existsSync } from 'node:fs';

/**
 * A lab peer the tests need. Missing, the test fails naming the Debian package (.ci/run installs
 * them); it never skips silently.
 */
export function requirePeer(path: string, pkg: string): string {
  if (!existsSync(path)) throw new Error(`${path} is missing: install the Debian package ${pkg} (apt-get install --no-install-recommends ${pkg}; .ci/run does)`);
  return path;
}
