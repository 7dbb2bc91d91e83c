import { Module } from '@nestjs/common';
import { FakeHypervisorDriver } from '../../drivers/hypervisor/fake-hypervisor.driver';
import { LibvirtSshDriver } from '../../drivers/hypervisor/libvirt-ssh.driver';
import { SshConnections } from '../../drivers/transport/ssh-client';
import { InventoryModule } from '../inventory/inventory.module';
import { HypervisorDrivers } from './hypervisor-drivers';
import { HypervisorsService } from './hypervisors.service';
import { PlacementService } from './placement.service';
import { HypervisorsController, IpPoolsController, VmImagesController, VpsController } from './vps.controller';
import { IpPoolsService } from './ip-pools.service';
import { VmImagesRepository } from './vm-images.repository';
import { VmConsoleRepository } from './vm-console.repository';
import { VmConsoleService } from './vm-console.service';
import { VmImagesService } from './vm-images.service';
import { VpsRepository } from './vps.repository';
import { VpsService } from './vps.service';
import { VpsSync } from './vps-sync.service';

@Module({
  imports: [InventoryModule],
  controllers: [HypervisorsController, IpPoolsController, VmImagesController, VpsController],
  providers: [
    VpsRepository,
    VmImagesRepository,
    VmConsoleRepository,
    VmConsoleService,
    IpPoolsService,
    VmImagesService,
    HypervisorsService,
    PlacementService,
    VpsService,
    VpsSync,
    { provide: HypervisorDrivers, useFactory: () => new HypervisorDrivers([new LibvirtSshDriver(new SshConnections()), new FakeHypervisorDriver()]) },
  ],
  exports: [VmConsoleService, VpsSync, HypervisorsService, PlacementService, VpsService, VmImagesService, HypervisorDrivers],
})
export class VpsModule {}
