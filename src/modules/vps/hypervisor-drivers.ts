import type { OnModuleDestroy } from '@nestjs/common';
import { HypervisorError, type HypervisorDriver } from '../../drivers/hypervisor/hypervisor-driver';

/** The hypervisor drivers of this process, by the name a hypervisor's row gives; their kept connections closed at shutdown. */
export class HypervisorDrivers implements OnModuleDestroy {
  private readonly byName: Map<string, HypervisorDriver>;

  constructor(drivers: HypervisorDriver[]) {
    this.byName = new Map(drivers.map((d) => [d.name, d]));
  }

  get(name: string): HypervisorDriver {
    const d = this.byName.get(name);
    if (!d) throw new HypervisorError(`hypervisor driver ${name} is not available in this process`);
    return d;
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.all([...this.byName.values()].map((d) => d.close?.()));
  }
}
