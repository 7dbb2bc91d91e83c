import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSecretKey, SecretBox } from '../../src/common/secret-box';

describe('SecretBox', () => {
  const box = new SecretBox(Buffer.alloc(32, 7));

  it('round-trips and never stores the plaintext', () => {
    const sealed = box.seal('calvin');
    expect(sealed).not.toContain('calvin');
    expect(box.seal('calvin')).not.toBe(sealed);
    expect(box.open(sealed)).toBe('calvin');
  });

  it('refuses a tampered value and a wrong key', () => {
    const raw = Buffer.from(box.seal('calvin'), 'base64');
    raw[raw.length - 1] ^= 1;
    expect(() => box.open(raw.toString('base64'))).toThrow();
    expect(() => new SecretBox(Buffer.alloc(32, 8)).open(box.seal('calvin'))).toThrow();
  });

  it('generates a key file once, readable only by its owner, and reuses it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'racksmith-key-'));
    const a = loadSecretKey(undefined, dir);
    expect(loadSecretKey(undefined, dir).equals(a)).toBe(true);
    expect(statSync(join(dir, 'secret.key')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'secret.key'), 'utf8').trim()).toBe(a.toString('hex'));
    expect(loadSecretKey('ab'.repeat(32), dir).toString('hex')).toBe('ab'.repeat(32));
    expect(loadSecretKey(Buffer.alloc(32, 1).toString('base64'), dir).equals(Buffer.alloc(32, 1))).toBe(true);
  });
});
