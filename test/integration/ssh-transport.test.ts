import { userInfo } from 'node:os';
import { SshConnections, SshError, shellQuote, type SshTarget } from '../../src/drivers/transport/ssh-client';
import { freePort } from '../support/cli';
import { startSshd, type Sshd } from '../support/sshd';

/** The SSH transport the hypervisor driver stands on, against a real OpenSSH server. */
let sshd: Sshd;
let ssh: SshConnections;
let target: SshTarget;

beforeAll(async () => {
  sshd = await startSshd(await freePort());
  ssh = new SshConnections();
  target = { host: '127.0.0.1', port: sshd.port, user: userInfo().username, privateKey: sshd.clientKey, hostKeySha256: sshd.hostKeySha256 };
}, 30_000);
afterAll(async () => {
  await ssh?.close();
  await sshd?.stop();
});

describe('SSH transport', () => {
  it('runs commands over one kept connection, arguments quoted for the remote shell', async () => {
    const hello = await ssh.exec(target, ['echo', 'hello']);
    expect(hello).toEqual({ code: 0, stdout: 'hello\n', stderr: '' });
    // Arguments arrive exactly as given: spaces, quotes and shell syntax are data.
    const tricky = ["it's $HOME; `id` && rm -rf /nothing", 'two  spaces', '*'];
    const echoed = await ssh.exec(target, ['printf', '%s\\n', ...tricky]);
    expect(echoed.stdout).toBe(tricky.map((a) => `${a}\n`).join(''));
    const failed = await ssh.exec(target, ['sh', '-c', 'echo oops >&2; exit 3']);
    expect(failed).toMatchObject({ code: 3, stderr: 'oops\n' });
    const stdin = await ssh.exec(target, ['cat'], { stdin: 'fed through stdin' });
    expect(stdin.stdout).toBe('fed through stdin');
    // Ten at once, still one connection.
    const many = await Promise.all(Array.from({ length: 10 }, (_, i) => ssh.exec(target, ['echo', String(i)])));
    expect(many.map((r) => r.stdout.trim())).toEqual(Array.from({ length: 10 }, (_, i) => String(i)));
    expect(ssh.opened).toBe(1);
    expect(sshd.logins()).toBe(1);
  });

  it('refuses a host whose key is not the pinned one, before logging in', async () => {
    const other = new SshConnections();
    try {
      const err = await other.exec({ ...target, hostKeySha256: 'b'.repeat(64) }, ['touch', '/tmp/racksmith-should-not-exist']).catch((e) => e);
      expect(err).toBeInstanceOf(SshError);
      expect(err.kind).toBe('host_key_mismatch');
      expect(err.message).toContain(`presented host key SHA-256 ${sshd.hostKeySha256}`);
      expect(sshd.logins()).toBe(1);
    } finally {
      await other.close();
    }
  });

  it('says when the key is refused or nobody answers', async () => {
    const other = new SshConnections();
    try {
      const auth = await other.exec({ ...target, privateKey: sshd.strangerKey }, ['true']).catch((e) => e);
      expect(auth).toMatchObject({ kind: 'auth_failed' });
      const closed = await other.exec({ ...target, port: await freePort() }, ['true']).catch((e) => e);
      expect(closed).toMatchObject({ kind: 'unreachable' });
      expect(closed.message).toContain('ECONNREFUSED');
    } finally {
      await other.close();
    }
  });

  it('quotes for a POSIX shell', () => {
    expect(shellQuote('plain-name_1.qcow2')).toBe('plain-name_1.qcow2');
    expect(shellQuote("a b'c")).toBe(`'a b'\\''c'`);
    expect(shellQuote('')).toBe(`''`);
  });
});
