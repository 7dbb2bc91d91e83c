import { Foundation1732460000000 } from './1732460000000-foundation';
import { Inventory1732470000000 } from './1732470000000-inventory';
import { Colocation1732480000000 } from './1732480000000-colocation';
import { ServerLifecycle1732490000000 } from './1732490000000-server-lifecycle';
import { Jobs1732500000000 } from './1732500000000-jobs';
import { Install1732510000000 } from './1732510000000-install';
import { Bmc1732520000000 } from './1732520000000-bmc';
import { BmcConsoleDriver1732530000000 } from './1732530000000-bmc-console-driver';
import { Boot1732540000000 } from './1732540000000-boot';
import { InstallTemplates1732550000000 } from './1732550000000-install-templates';
import { Discovery1732560000000 } from './1732560000000-discovery';
import { Billing1732570000000 } from './1732570000000-billing';
import { TaskWaiting1732580000000 } from './1732580000000-task-waiting';
import { Vps1732590000000 } from './1732590000000-vps';
import { VpsVms1732600000000 } from './1732600000000-vps-vms';
import { VmImages1732610000000 } from './1732610000000-vm-images';
import { VpsOrders1732620000000 } from './1732620000000-vps-orders';
import { VmConsole1732630000000 } from './1732630000000-vm-console';
import { VmAddresses1732640000000 } from './1732640000000-vm-addresses';
import { OsImages1732650000000 } from './1732650000000-os-images';
import { BootAgents1732660000000 } from './1732660000000-boot-agents';
import { BmcRecords1732670000000 } from './1732670000000-bmc-records';
import { JobNotify1732680000000 } from './1732680000000-job-notify';
import { Customers1732690000000 } from './1732690000000-customers';

/** Every migration, in order. Schema changes only ever happen here. */
export const MIGRATIONS = [Foundation1732460000000, Inventory1732470000000, Colocation1732480000000, ServerLifecycle1732490000000, Jobs1732500000000, Install1732510000000, Bmc1732520000000, BmcConsoleDriver1732530000000, Boot1732540000000, InstallTemplates1732550000000, Discovery1732560000000, Billing1732570000000, TaskWaiting1732580000000, Vps1732590000000, VpsVms1732600000000, VmImages1732610000000, VpsOrders1732620000000, VmConsole1732630000000, VmAddresses1732640000000, OsImages1732650000000, BootAgents1732660000000, BmcRecords1732670000000, JobNotify1732680000000, Customers1732690000000];
