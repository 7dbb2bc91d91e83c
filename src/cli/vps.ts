import type { z } from 'zod';
import type { JobView } from '../jobs/job.service';
import { VmImagesService } from '../modules/vps/vm-images.service';
import { VpsSync, type HostSync } from '../modules/vps/vps-sync.service';
import { vpsInput, vpsRebuildInput } from '../modules/vps/vps.schemas';
import { VM_ACTIONS, VpsService, type VmAction, type VmView } from '../modules/vps/vps.service';
import { print, withApp } from './commands';
import { UsageError } from './usage';

/** `racksmith vps …`: the VPS API's operations from a shell, audited as the CLI user. */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function checkId(id: string): string {
  if (!UUID.test(id)) throw new UsageError('the VM id is a UUID (see `racksmith vps list`)');
  return id;
}

function parse<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UsageError(`${issue.path.join('.') || 'input'}: ${issue.message}`);
  }
  return parsed.data;
}

const size = (v: VmView) => `${v.size.vcpus} vCPU ${v.size.ramMb} MB ${v.size.diskGb} GB`;
const jobLine = (what: string, job: JobView) => `${what}: job ${job.id}; follow it with: racksmith jobs watch ${job.id}\n`;

export function vpsList(opts: { customer?: string; hypervisor?: string; state?: string; json?: boolean }): Promise<void> {
  return withApp(async (get) => {
    const items: VmView[] = [];
    let cursor: string | undefined;
    for (let i = 0; i < 1000; i++) {
      const page = await get(VpsService).list({ customer: opts.customer, hypervisorId: opts.hypervisor, state: opts.state }, 500, cursor);
      items.push(...page.items);
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    print(!!opts.json, items, () => items.map((v) => [v.id, v.state.padEnd(10), v.name.padEnd(24), size(v).padEnd(24), v.customer].join('  ')).join('\n') + (items.length ? '\n' : ''));
  });
}

export function vpsShow(id: string, opts: { json?: boolean }): Promise<void> {
  return withApp(async (get) => {
    const v = await get(VpsService).get(checkId(id));
    print(!!opts.json, v, () => `${v.name} (${v.id})\n  state      ${v.state}${v.lastError ? ` (${v.lastError})` : ''}\n  customer   ${v.customer}\n  size       ${size(v)}\n  image      ${v.baseImage ?? '-'}\n  hypervisor ${v.hypervisorId}\n  last job   ${v.jobId ?? '-'}\n`);
  });
}

export function vpsCreate(opts: { name: string; customer: string; vcpus: string; ramMb: string; diskGb: string; image: string; sshKey?: string[]; hostname?: string; site?: string; antiAffinity?: boolean; order?: string; json?: boolean }): Promise<void> {
  const input = parse(vpsInput, {
    name: opts.name,
    customer: opts.customer,
    vcpus: Number(opts.vcpus),
    ramMb: Number(opts.ramMb),
    diskGb: Number(opts.diskGb),
    baseImage: opts.image,
    sshKeys: opts.sshKey ?? [],
    hostname: opts.hostname,
    site: opts.site,
    antiAffinity: !!opts.antiAffinity,
    orderId: opts.order,
  });
  return withApp(async (get) => {
    const { vm, job } = await get(VpsService).create(input);
    print(!!opts.json, { vm, job }, () => jobLine(`VM ${vm.name} (${vm.id}) placed on hypervisor ${vm.hypervisorId}`, job));
  });
}

export function vpsAction(action: string, id: string, opts: { force?: boolean; json?: boolean }): Promise<void> {
  if (!(VM_ACTIONS as readonly string[]).includes(action)) throw new UsageError(`the action is one of ${VM_ACTIONS.join(', ')}`);
  return withApp(async (get) => {
    const job = await get(VpsService).act(checkId(id), action as VmAction, !!opts.force);
    print(!!opts.json, job, () => jobLine(action, job));
  });
}

export function vpsResize(id: string, opts: { vcpus: string; ramMb: string; diskGb: string; json?: boolean }): Promise<void> {
  const to = { vcpus: Number(opts.vcpus), ramMb: Number(opts.ramMb), diskGb: Number(opts.diskGb) };
  if (!Object.values(to).every((n) => Number.isInteger(n) && n > 0)) throw new UsageError('--vcpus, --ram-mb and --disk-gb are positive integers');
  return withApp(async (get) => {
    const job = await get(VpsService).resize(checkId(id), to);
    print(!!opts.json, job, () => jobLine('resize', job));
  });
}

export function vpsRebuild(id: string, opts: { image?: string; sshKey?: string[]; json?: boolean }): Promise<void> {
  const input = parse(vpsRebuildInput, { baseImage: opts.image, sshKeys: opts.sshKey ?? [] });
  return withApp(async (get) => {
    const job = await get(VpsService).rebuild(checkId(id), input);
    print(!!opts.json, job, () => jobLine('rebuild', job));
  });
}

export function vpsDelete(id: string, opts: { json?: boolean }): Promise<void> {
  return withApp(async (get) => {
    const job = await get(VpsService).remove(checkId(id));
    print(!!opts.json, job, () => jobLine('delete', job));
  });
}

export function vpsImages(opts: { json?: boolean }): Promise<void> {
  return withApp(async (get) => {
    const images = await get(VmImagesService).list();
    print(!!opts.json, images, () => images.map((i) => [i.name.padEnd(20), (i.enabled ? 'enabled' : 'disabled').padEnd(8), `${i.vms} VMs`.padEnd(8), i.file, i.url ?? '(in the pools)'].join('  ')).join('\n') + (images.length ? '\n' : ''));
  });
}

export function vpsSync(hypervisor: string | undefined, opts: { json?: boolean }): Promise<void> {
  if (hypervisor && !UUID.test(hypervisor)) throw new UsageError('the hypervisor id is a UUID');
  return withApp(async (get) => {
    const results: HostSync[] = hypervisor ? [await get(VpsSync).syncOne(hypervisor)] : await get(VpsSync).syncAll();
    print(!!opts.json, results, () =>
      results
        .map((r) => `${r.hypervisor}: ${r.error ? `not reachable: ${r.error}` : `${r.vms} VMs, ${r.changed.length} corrected${r.changed.map((c) => `\n  ${c.name}: ${c.from} -> ${c.to}`).join('')}${r.unmanaged.length ? `\n  not made by racksmith: ${r.unmanaged.join(', ')}` : ''}`}`)
        .join('\n') + '\n',
    );
    if (results.some((r) => r.error)) process.exitCode = 1;
  });
}
