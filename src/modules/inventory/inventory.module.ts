import { Module } from '@nestjs/common';
import { describeConstraints } from '../../database/db-errors';
import {
  DeviceRepository,
  HardwareModelRepository,
  NicRepository,
  PduRepository,
  PowerConnectionRepository,
  PowerFeedRepository,
  PowerPanelRepository,
  RackRepository,
  SiteRepository,
} from './inventory.repositories';
import { DevicesController, HardwareModelsController, PowerController, RacksController, SitesController } from './inventory.controllers';
import { SitesService } from './sites.service';
import { RacksService } from './racks.service';
import { HardwareModelsService } from './hardware-models.service';
import { DevicesService } from './devices.service';
import { PowerService } from './power.service';
import { ElevationService } from './elevation.service';
import { InventoryImportService } from './inventory-import.service';
import { BmcCredentialsRepository } from './bmc-credentials.repository';
import { BmcCredentialsService } from './bmc-credentials.service';
import { BmcCredentialsController } from './bmc-credentials.controller';

describeConstraints({
  devices_rack_units_free: { code: 'rack_units_taken', message: 'those rack units are taken on that face', field: 'placement.position' },
  devices_rack_id_site_id_fkey: { code: 'rack_in_other_site', message: 'the rack is in another site than the device', field: 'placement.rack', status: 400 },
  nics_mac_key: { code: 'mac_taken', message: 'a NIC with that MAC address already exists', field: 'nics' },
  devices_serial_key: { code: 'serial_taken', message: 'a device with that serial number already exists', field: 'serial' },
  devices_asset_tag_key: { code: 'asset_tag_taken', message: 'a device with that asset tag already exists', field: 'assetTag' },
  devices_site_name_key: { code: 'name_taken', message: 'a device with that name already exists in the site', field: 'name' },
  devices_bmc_password_ref_fkey: { code: 'unknown_credential', message: 'no BMC credential of that name: set it first (racksmith secrets set NAME)', field: 'bmc.passwordRef', status: 400 },
  sites_code_key: { code: 'site_code_taken', message: 'a site with that code already exists', field: 'code' },
  racks_site_id_name_key: { code: 'rack_name_taken', message: 'a rack with that name already exists in the site', field: 'name' },
  hardware_models_vendor_model_key: { code: 'hardware_model_exists', message: 'that vendor and model already exist', field: 'model' },
  power_panels_site_id_name_key: { code: 'name_taken', message: 'a power panel with that name already exists in the site', field: 'name' },
  power_feeds_panel_id_name_key: { code: 'name_taken', message: 'a feed with that name already exists on the panel', field: 'name' },
  pdus_feed_id_name_key: { code: 'name_taken', message: 'a PDU with that name already exists on the feed', field: 'name' },
  pdus_device_id_key: { code: 'pdu_device_taken', message: 'that device is already another PDU', field: 'deviceId' },
  power_connections_outlet_key: { code: 'outlet_taken', message: 'that PDU outlet is already in use', field: 'outlet' },
  power_connections_device_id_pdu_id_key: { code: 'already_connected', message: 'the device is already connected to that PDU', field: 'pduId' },
});

@Module({
  controllers: [SitesController, RacksController, HardwareModelsController, DevicesController, PowerController, BmcCredentialsController],
  providers: [
    SiteRepository,
    RackRepository,
    HardwareModelRepository,
    DeviceRepository,
    NicRepository,
    PowerPanelRepository,
    PowerFeedRepository,
    PduRepository,
    PowerConnectionRepository,
    SitesService,
    RacksService,
    HardwareModelsService,
    DevicesService,
    PowerService,
    ElevationService,
    InventoryImportService,
    BmcCredentialsRepository,
    BmcCredentialsService,
  ],
  exports: [SitesService, RacksService, HardwareModelsService, DevicesService, PowerService, ElevationService, InventoryImportService, BmcCredentialsService],
})
export class InventoryModule {}
