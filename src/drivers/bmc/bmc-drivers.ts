import { BmcError, type BmcDriver } from './bmc-driver';

/** The BMC drivers of this process, by the name a server's inventory row gives. */
export class BmcDrivers {
  private readonly byName: Map<string, BmcDriver>;

  constructor(drivers: BmcDriver[]) {
    this.byName = new Map(drivers.map((d) => [d.name, d]));
  }

  get(name: string | null): BmcDriver {
    if (!name) throw new BmcError('no BMC driver is set for this server or its hardware model', 'unsupported');
    const driver = this.byName.get(name);
    if (!driver) throw new BmcError(`BMC driver ${name} is not available in this process (have: ${[...this.byName.keys()].join(', ')})`, 'unsupported');
    return driver;
  }
}
