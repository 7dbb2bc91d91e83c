import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir, userInfo } from 'node:os';
import { basename, join } from 'node:path';
import pino from 'pino';
import { Database } from '../../src/database/database';
import { JobQueue } from '../../src/jobs/job-queue';
import { JobRegistry } from '../../src/jobs/job-registry';
import { JobRepository } from '../../src/jobs/job.repository';
import { JobRunner } from '../../src/jobs/job-runner';
import { JobService, type JobView } from '../../src/jobs/job.service';
import { startTestApp, type TestApp } from './app';
import { freePort } from './cli';
import { startLibvirtd, testVmImage, type Libvirtd } from './libvirt-lab';
import { startSshd, type Sshd } from './sshd';
import { until } from './wait';

/**
 * racksmith with its job runner, a private libvirtd reached over a real sshd (LAB.md), registered
 * as a libvirt-over-ssh hypervisor (emulated guests: this machine's nested /dev/kvm is not to be
 * trusted), and a loopback HTTP server the hypervisor fetches the test image from: the test VM's
 * disk, kernel and initrd (direct kernel boot), registered as image `lab-busybox`.
 */
export interface VpsLab {
  t: TestApp;
  /** host:port of the app's HTTP listener (the console WebSocket). */
  base: string;
  jobs: JobService;
  lv: Libvirtd;
  sshd: Sshd;
  hypervisorId: string;
  /** Requests the image server answered, by file. */
  fetched: Map<string, number>;
  imageUrl(file: string): string;
  settled(jobId: string, ms?: number): Promise<JobView>;
  /** The serial console log of a VM so far ('' before it exists). */
  console(vm: string): string;
  stop(): Promise<void>;
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

export async function startVpsLab(tag: string, env: Record<string, string> = {}, opts: { jobConcurrency?: number } = {}): Promise<VpsLab> {
  const dir = mkdtempSync(join(tmpdir(), 'racksmith-vps-lab-'));
  const images = join(dir, 'images');
  execFileSync('mkdir', ['-p', images]);
  const { kernel, initrd } = testVmImage(images);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(images, 'lab-base.qcow2'), '1G']);
  const files = new Map([
    ['lab-base.qcow2', join(images, 'lab-base.qcow2')],
    ['lab-vmlinuz', kernel],
    ['lab-initrd.gz', initrd],
  ]);
  const fetched = new Map<string, number>();
  const http: Server = createServer((req, res) => {
    const name = basename(req.url ?? '');
    const path = files.get(name);
    if (!path) return void res.writeHead(404).end();
    fetched.set(name, (fetched.get(name) ?? 0) + 1);
    res.writeHead(200, { 'content-length': statSync(path).size });
    createReadStream(path).pipe(res);
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const httpPort = (http.address() as { port: number }).port;
  const imageUrl = (file: string) => `http://127.0.0.1:${httpPort}/${file}`;

  const t = await startTestApp(env);
  await t.app.listen(0, '127.0.0.1');
  const base = `127.0.0.1:${(t.app.getHttpServer().address() as { port: number }).port}`;
  const jobs = t.app.get(JobService);
  const lv = await startLibvirtd(dir, tag);
  const sshd = await startSshd(await freePort());
  const runner = new JobRunner(t.app.get(Database), t.app.get(JobRepository), t.app.get(JobRegistry), t.app.get(JobQueue), pino({ level: 'silent' }), { allSiteCodes: async () => ['lab'], heartbeatMs: 500, staleAfterSeconds: 10, concurrency: opts.jobConcurrency });
  await runner.start();
  await t.request({ method: 'POST', url: '/api/v1/sites', body: { code: 'lab', name: 'VPS lab' } });
  const modelId = (await t.request({ method: 'POST', url: '/api/v1/hardware-models', body: { vendor: 'Lab', model: 'KVM host', heightU: 1 } })).json.id;
  const device = (await t.request({ method: 'POST', url: '/api/v1/devices', body: { site: 'lab', name: `hv-lab-${tag}`, role: 'hypervisor', modelId } })).json;
  const hv = await t.request({
    method: 'POST',
    url: '/api/v1/hypervisors',
    body: {
      deviceId: device.id,
      // The host key pinned as OpenSSH prints its fingerprint (`ssh-keygen -lf`): SHA256:<base64>.
      ssh: { host: '127.0.0.1', port: sshd.port, user: userInfo().username, privateKey: sshd.clientKey, hostKeySha256: `SHA256:${Buffer.from(sshd.hostKeySha256, 'hex').toString('base64').replace(/=+$/, '')}` },
      libvirtUri: lv.uri,
      storagePool: lv.pool,
      domainType: 'qemu',
      capacity: { vcpus: 4, ramMb: 6144, storageGb: 100 },
    },
  });
  if (hv.status !== 201) throw new Error(`hypervisor not registered: ${hv.text}`);
  const image = await t.request({
    method: 'PUT',
    url: '/api/v1/vps/images/lab-busybox',
    body: {
      os: 'busybox (test image)',
      file: 'lab-base.qcow2',
      url: imageUrl('lab-base.qcow2'),
      sha256: sha256(files.get('lab-base.qcow2')!),
      boot: {
        kernel: { file: 'lab-vmlinuz', url: imageUrl('lab-vmlinuz'), sha256: sha256(kernel) },
        initrd: { file: 'lab-initrd.gz', url: imageUrl('lab-initrd.gz'), sha256: sha256(initrd) },
        cmdline: 'console=ttyS0 panic=5',
      },
    },
  });
  if (image.status !== 201) throw new Error(`image not registered: ${image.text}`);
  return {
    t,
    base,
    jobs,
    lv,
    sshd,
    hypervisorId: device.id,
    fetched,
    imageUrl,
    settled: (id, ms = 180_000) => until(() => jobs.get(id), (j) => ['succeeded', 'failed', 'cancelled'].includes(j.state), ms, 200),
    console: (vm) => {
      const log = join(lv.poolDir, `${vm}.console.log`);
      return existsSync(log) ? readFileSync(log, 'utf8') : '';
    },
    async stop() {
      await runner.stop();
      await t.close();
      await sshd.stop();
      await lv.stop();
      await new Promise((r) => http.close(r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
