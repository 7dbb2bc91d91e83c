import { Module } from '@nestjs/common';
import { InstallTemplateRepository } from './install-template.repository';
import { InstallTemplatesController } from './install-templates.controller';
import { InstallTemplatesService } from './install-templates.service';

/** Install templates: shipped and engineers' versions, checked, rendered per install. */
@Module({ controllers: [InstallTemplatesController], providers: [InstallTemplatesService, InstallTemplateRepository], exports: [InstallTemplatesService] })
export class TemplatesModule {}
