// VPS create time broken into steps, on the lab hypervisor (a private libvirtd reached over a
// real sshd on this machine, emulated guests: LAB.md). For each of N VMs: the API answer (placement
// booked), each task of the vps-create job, and the time until the guest has booted and read its
// cloud-init seed from the serial console. The first VM also fetches the image onto the host.
// Reference in the same run: the same host work done by hand with a local shell (qemu-img,
// genisoimage, virsh define + start; no SSH, no job engine, no database).
// Then VPS_BENCH_CONCURRENT creates at once: wall time until all are running, with the job
// runner's concurrency VPS_BENCH_JOB_CONCURRENCY (RACKSMITH_JOB_CONCURRENCY in a real process).
//   npx jest -c bench/jest.config.js vps-create   (VPS_BENCH_N=5, VPS_BENCH_CONCURRENT=8, VPS_BENCH_JOB_CONCURRENCY=4)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { domainXml, seedFiles, vmMac } from '../src/modules/vps/vm-config';
import { startVpsLab, type VpsLab } from '../test/support/vps-lab';
import { until } from '../test/support/wait';

const N = Number(process.env.VPS_BENCH_N ?? 5);
const CONCURRENT = Number(process.env.VPS_BENCH_CONCURRENT ?? 8);
const JOB_CONCURRENCY = Number(process.env.VPS_BENCH_JOB_CONCURRENCY ?? 4);
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bench@example';
const TAG = `b${process.pid}`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (a: string | null, b: string | null) => new Date(b!).getTime() - new Date(a!).getTime();
const booted = (log: string) => /racksmith-vm: \d+ cpus/.test(log);

let lab: VpsLab;
beforeAll(async () => {
  lab = await startVpsLab(TAG, {}, { jobConcurrency: JOB_CONCURRENCY });
}, 120_000);
afterAll(async () => {
  await lab?.stop();
});

it(`creates ${N} VMs and reports each step`, async () => {
  const rows: Record<string, number>[] = [];
  for (let i = 0; i < N; i++) {
    const name = `bench-${TAG}-${i}`;
    const t0 = Date.now();
    const res = await lab.t.request({ method: 'POST', url: '/api/v1/vps', body: { name, customer: `bench-${i}`, vcpus: 1, ramMb: 256, diskGb: 2, baseImage: 'lab-busybox', sshKeys: [KEY] } });
    const answered = Date.now() - t0;
    const job = await lab.settled(res.json.job.id);
    if (job.state !== 'succeeded') throw new Error(`create ${i} ${job.state}: ${job.error}`);
    const running = Date.now() - t0;
    await until(async () => lab.console(name), booted, 180_000, 100);
    const row: Record<string, number> = { api: answered, queued: ms(job.createdAt, job.startedAt) };
    for (const task of job.tasks!) row[task.name] = ms(task.startedAt, task.finishedAt);
    row['job total'] = ms(job.createdAt, job.finishedAt);
    row['POST to running'] = running;
    row['guest read its seed'] = Date.now() - t0;
    rows.push(row);
    // Gone again, so the next VM's numbers are not those of a host busy booting the last ones.
    const del = await lab.t.request({ method: 'DELETE', url: `/api/v1/vps/${res.json.vm.id}` });
    await lab.settled(del.json.id);
  }

  // The reference: the same host work by hand, locally.
  const ref: Record<string, number>[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'racksmith-vps-ref-'));
  const pool = lab.lv.poolDir;
  for (let i = 0; i < N; i++) {
    const name = `ref-${TAG}-${i}`;
    const id = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
    const t0 = Date.now();
    const step = (label: string, fn: () => void, row: Record<string, number>) => {
      const s = Date.now();
      fn();
      row[label] = Date.now() - s;
    };
    const row: Record<string, number> = {};
    step('create-disk', () => execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', `${pool}/lab-base.qcow2`, `${pool}/${name}.qcow2`, '2G']), row);
    step('write-seed', () => {
      const files = seedFiles({ instanceId: id, hostname: name, sshKeys: [KEY], network: { mode: 'dhcp' }, mac: vmMac(id) });
      for (const [f, c] of Object.entries(files)) writeFileSync(join(dir, f), c);
      execFileSync('genisoimage', ['-quiet', '-output', `${pool}/${name}-seed.iso`, '-volid', 'cidata', '-joliet', '-rock', ...Object.keys(files).map((f) => join(dir, f))]);
    }, row);
    step('define', () => {
      writeFileSync(join(dir, 'domain.xml'), domainXml({ domainType: 'qemu', name, uuid: id, title: name, vcpus: 1, ramMb: 256, disk: `${pool}/${name}.qcow2`, seed: `${pool}/${name}-seed.iso`, mac: vmMac(id), consoleLog: `${pool}/${name}.console.log`, kernel: `${pool}/lab-vmlinuz`, initrd: `${pool}/lab-initrd.gz`, cmdline: 'console=ttyS0 panic=5' }));
      lab.lv.virsh('define', join(dir, 'domain.xml'));
    }, row);
    step('start', () => lab.lv.virsh('start', name), row);
    row['total to running'] = Date.now() - t0;
    await until(async () => lab.console(name), booted, 180_000, 100);
    row['guest read its seed'] = Date.now() - t0;
    ref.push(row);
    lab.lv.virsh('destroy', name);
    lab.lv.virsh('undefine', name);
  }
  rmSync(dir, { recursive: true, force: true });

  // Several at once (the host is idle again first).
  const t1 = Date.now();
  const made = await Promise.all(
    Array.from({ length: CONCURRENT }, async (_, i) => {
      const res = await lab.t.request({ method: 'POST', url: '/api/v1/vps', body: { name: `par-${TAG}-${i}`, customer: `bench-par-${i}`, vcpus: 1, ramMb: 256, diskGb: 2, baseImage: 'lab-busybox', sshKeys: [KEY] } });
      const job = await lab.settled(res.json.job.id);
      if (job.state !== 'succeeded') throw new Error(`concurrent create ${i} ${job.state}: ${job.error}`);
      return Date.now() - t1;
    }),
  );
  const wall = Date.now() - t1;

  const keys = Object.keys(rows[0]!);
  const lines = [`racksmith (first VM, image fetched | median of the other ${N - 1}) vs by hand (median of ${N}), ms`];
  for (const k of keys) {
    const rest = rows.slice(1).map((r) => r[k]!);
    lines.push(`${k.padEnd(22)} ${String(rows[0]![k]).padStart(6)} | ${String(rest.length ? median(rest) : '-').padStart(6)}   ${ref[0]![k] !== undefined ? `by hand ${median(ref.map((r) => r[k]!))}` : ''}`);
  }
  lines.push(`by hand total to running ${median(ref.map((r) => r['total to running']!))}`);
  lines.push(`${CONCURRENT} creates at once, job concurrency ${JOB_CONCURRENCY}: all running after ${wall} ms (first ${Math.min(...made)} ms, median ${median(made)} ms)`);
  console.log(lines.join('\n'));
});
