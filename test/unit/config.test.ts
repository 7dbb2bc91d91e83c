import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/config';

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

function yamlFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'racksmith-config-'));
  const file = join(dir, 'racksmith.yaml');
  writeFileSync(file, text);
  return file;
}

describe('configuration', () => {
  it('has working defaults with an empty environment', () => {
    const c = loadConfig({});
    expect(c.http).toEqual({ host: '127.0.0.1', port: 8080, bodyLimit: 1048576, trustProxy: false, shutdownTimeout: 15 });
    expect(c.database.url).toBeUndefined();
    expect(c.dataDir).toBe('./var');
    expect(c.role).toBe('all');
  });

  it('reads and coerces environment values', () => {
    const c = loadConfig({ RACKSMITH_PORT: '9000', RACKSMITH_TRUST_PROXY: 'true', DATABASE_URL: 'postgres://u@db.example:5433/rs', RACKSMITH_ROLE: 'agent', RACKSMITH_SITE: 'baltic' });
    expect(c.http.port).toBe(9000);
    expect(c.http.trustProxy).toBe(true);
    expect(c.database.url).toBe('postgres://u@db.example:5433/rs');
    expect(c.role).toBe('agent');
    expect(c.site).toBe('baltic');
  });

  it('a boot interface gives the boot address, or must hold the one given', () => {
    expect(loadConfig({ RACKSMITH_BOOT_INTERFACE: 'lo' }).boot.address).toBe('127.0.0.1');
    expect(loadConfig({ RACKSMITH_BOOT_INTERFACE: 'lo', RACKSMITH_BOOT_ADDRESS: '127.0.0.1' }).boot.address).toBe('127.0.0.1');
    expect(problems({ RACKSMITH_BOOT_INTERFACE: 'lo', RACKSMITH_BOOT_ADDRESS: '10.9.9.9' })).toEqual([expect.stringContaining('RACKSMITH_BOOT_ADDRESS: 10.9.9.9 is not an address of lo')]);
    expect(problems({ RACKSMITH_BOOT_INTERFACE: 'nosuch0' })).toEqual([expect.stringContaining('RACKSMITH_BOOT_INTERFACE: nosuch0 has no IPv4 address')]);
  });

  it('lists every bad and unknown key in one error', () => {
    const p = problems({ RACKSMITH_PORT: 'eighty', RACKSMITH_LOG_LEVEL: 'loud', RACKSMITH_PROT: '1', DATABASE_URL: 'mysql://x/y', PATH: '/bin' });
    expect(p).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^RACKSMITH_PORT: expected a TCP port .*got "eighty"/),
        expect.stringMatching(/^RACKSMITH_LOG_LEVEL: expected fatal, error, .*got "loud"/),
        'RACKSMITH_PROT: unknown setting',
        expect.stringMatching(/^DATABASE_URL: expected a postgres:\/\/ URL$/),
      ]),
    );
    expect(p).toHaveLength(4);
  });

  it('never echoes a secret value in an error', () => {
    const p = problems({ RACKSMITH_BOOTSTRAP_TOKEN: 'short-secret' });
    expect(p).toEqual(['RACKSMITH_BOOTSTRAP_TOKEN: expected a string of at least 24 characters']);
    expect(p.join()).not.toContain('short-secret');
  });

  it('reads a nested YAML file, and the environment wins over it', () => {
    const file = yamlFile('http:\n  port: 9100\n  host: 0.0.0.0\nlog:\n  level: debug\ndataDir: /srv/racksmith\n');
    const c = loadConfig({ RACKSMITH_CONFIG: file, RACKSMITH_PORT: '9200' });
    expect(c.http.port).toBe(9200);
    expect(c.http.host).toBe('0.0.0.0');
    expect(c.log.level).toBe('debug');
    expect(c.dataDir).toBe('/srv/racksmith');
  });

  it('rejects unknown and malformed keys in the YAML file, naming the file', () => {
    const file = yamlFile('http:\n  port: 99999\n  prot: 1\nfoo: bar\n');
    const p = problems({ RACKSMITH_CONFIG: file });
    expect(p).toEqual(
      expect.arrayContaining([
        `http.prot (in ${file}): unknown setting`,
        `foo (in ${file}): unknown setting`,
        expect.stringMatching(/^http\.port \(in .*\): expected a TCP port from 0 to 65535, got 99999/),
      ]),
    );
  });

  it('reports an unreadable or non-YAML file', () => {
    expect(problems({ RACKSMITH_CONFIG: '/nonexistent/racksmith.yaml' })[0]).toMatch(/^RACKSMITH_CONFIG: cannot read \/nonexistent/);
    expect(problems({ RACKSMITH_CONFIG: yamlFile('http: [1, 2\n') })[0]).toMatch(/is not valid YAML/);
    expect(problems({ RACKSMITH_CONFIG: yamlFile('- a\n- b\n') })[0]).toMatch(/must hold a YAML mapping/);
  });

  it('lets command-line flags override the environment', () => {
    expect(loadConfig({ RACKSMITH_PORT: '9000' }, { RACKSMITH_PORT: '9001' }).http.port).toBe(9001);
    expect(() => loadConfig({}, { RACKSMITH_ROLE: 'boss' })).toThrow(/RACKSMITH_ROLE: expected all, api, agent/);
  });
});
