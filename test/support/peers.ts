import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * A lab peer the tests need. Missing, the test fails naming the Debian package (.ci/run installs
 * them); it never skips silently.
 */
export function requirePeer(path: string, pkg: string): string {
  if (!existsSync(path)) throw new Error(`${path} is missing: install the Debian package ${pkg} (apt-get install --no-install-recommends ${pkg}; .ci/run does)`);
  return path;
}

/** Stop a peer the test started: SIGTERM, then SIGKILL if it has not exited within `ms`. */
export async function stopPeer(child: ChildProcess, ms = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  await new Promise<void>((r) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      r();
    }, ms);
    child.once('exit', () => {
      clearTimeout(t);
      r();
    });
  });
}
