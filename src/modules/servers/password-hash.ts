import { ProcessRunner } from '../../drivers/transport/process-runner';

/**
 * A root password as installers take it: a SHA-512 crypt hash ($6$salt$...), made by `openssl
 * passwd -6` with the password on stdin. Only the hash is stored or handed on.
 */
export async function sha512Crypt(password: string, runner = new ProcessRunner()): Promise<string> {
  const res = await runner.check('openssl', ['passwd', '-6', '-stdin'], { input: `${password}\n`, timeoutMs: 5_000 });
  const hash = res.stdout.trim();
  if (!/^\$6\$[^$]+\$[./0-9A-Za-z]{86}$/.test(hash)) throw new Error('openssl passwd gave no SHA-512 crypt hash');
  return hash;
}
