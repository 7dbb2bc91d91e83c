import { readFileSync } from 'node:fs';
import { Module } from '@nestjs/common';
import { AppConfig, type Config } from '../../config/config';
import { BmcDrivers } from '../../drivers/bmc/bmc-drivers';
import { FakeBmcDriver } from '../../drivers/bmc/fake-bmc.driver';
import { IpmipowerStatusReader } from '../../drivers/bmc/ipmipower';
import { IpmitoolBmcDriver } from '../../drivers/bmc/ipmitool.driver';
import { RedfishBmcDriver } from '../../drivers/bmc/redfish.driver';
import { InventoryModule } from '../inventory/inventory.module';
import { BmcAccess } from './bmc-access.service';
import { BmcStatusRepository } from './bmc-status.repository';

function readCa(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`RACKSMITH_REDFISH_CA: cannot read ${path}: ${(err as Error).message}`);
  }
}

/** The BMC drivers of this process and the way from a server to its BMC. */
@Module({
  imports: [InventoryModule],
  providers: [
    {
      provide: BmcDrivers,
      inject: [AppConfig],
      useFactory: (config: Config) =>
        new BmcDrivers([
          new IpmitoolBmcDriver(
            { program: config.bmc.ipmitool, cipherSuite: config.bmc.cipherSuite, timeoutSeconds: config.bmc.timeout, retries: config.bmc.retries, channel: 1 },
            undefined,
            config.bmc.ipmipower
              ? new IpmipowerStatusReader({ program: config.bmc.ipmipower, cipherSuite: config.bmc.cipherSuite, timeoutSeconds: config.bmc.timeout, retries: config.bmc.retries, workarounds: config.bmc.ipmipowerWorkarounds, fanout: config.power.syncConcurrency })
              : undefined,
          ),
          new RedfishBmcDriver({ timeoutSeconds: config.bmc.timeout, retries: config.bmc.retries, verifyTls: config.bmc.redfishVerifyTls, ca: config.bmc.redfishCa ? readCa(config.bmc.redfishCa) : undefined }),
          new FakeBmcDriver(),
        ]),
    },
    BmcAccess,
    BmcStatusRepository,
  ],
  exports: [BmcDrivers, BmcAccess, BmcStatusRepository],
})
export class BmcModule {}
