import { Module } from '@nestjs/common';
import { TftpService } from './tftp.service';

/** Network boot: TFTP for the first-stage loaders (DHCP and HTTP boot join it here). */
@Module({ providers: [TftpService], exports: [TftpService] })
export class BootModule {}
