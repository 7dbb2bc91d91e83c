import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner } from '../../drivers/transport/process-runner';

/**
 * The real tools' verdict on a rendered template, where Debian ships one: `debconf-set-selections
 * -c` for a preseed, `cloud-init schema` for cloud-config/autoinstall user-data, `sh -n` for the
 * script part of a FreeBSD installerconfig. null: the file passed (or has no checker).
 */
export async function checkRendered(file: string, text: string, runner = new ProcessRunner()): Promise<string | null> {
  const dir = await mkdtemp(join(tmpdir(), 'racksmith-check-'));
  try {
    const path = join(dir, file);
    if (file.endsWith('preseed.cfg') || file === 'preseed') {
      await writeFile(path, text);
      const r = await runner.run('debconf-set-selections', ['-c', path], { timeoutMs: 10_000 });
      return r.code === 0 ? null : `debconf-set-selections -c: ${(r.stderr || r.stdout).trim().split('\n')[0]}`;
    }
    if (file === 'user-data') {
      await writeFile(path, text);
      const r = await runner.run('cloud-init', ['schema', '-c', path], { timeoutMs: 30_000 });
      return r.code === 0 ? null : `cloud-init schema: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' ')}`;
    }
    if (file === 'installerconfig') {
      const script = text.includes('#!/bin/sh') ? text.slice(text.indexOf('#!/bin/sh')) : text;
      const r = await runner.run('sh', ['-n'], { timeoutMs: 10_000, input: script });
      return r.code === 0 ? null : `sh -n: ${r.stderr.trim().split('\n')[0]}`;
    }
    return null;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
