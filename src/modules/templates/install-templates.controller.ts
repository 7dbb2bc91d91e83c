import { Body, Controller, Get, Param, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { READ_ROLES } from '../../common/roles';
import { Roles } from '../auth/auth.decorators';
import { InstallTemplatesService } from './install-templates.service';

class TemplateParams extends createZodDto(z.object({ os: z.string().min(1).max(64), file: z.string().min(1).max(64) }).strict()) {}
class TemplateBody extends createZodDto(z.object({ body: z.string().min(1).max(262_144), note: z.string().max(500).optional() }).strict()) {}

@ApiTags('install-templates')
@ApiBearerAuth()
@Controller('install-templates')
export class InstallTemplatesController {
  constructor(private readonly templates: InstallTemplatesService) {}

  @Get() @Roles(...READ_ROLES) @ApiOperation({ summary: 'Install templates by OS and file: shipped, or the newest version an engineer saved' })
  list() {
    return this.templates.list();
  }

  @Get(':os/:file') @Roles(...READ_ROLES) @ApiOperation({ summary: 'One template: the body installs get, the shipped one, and every saved version' })
  get(@Param() p: TemplateParams) {
    return this.templates.get(p.os, p.file);
  }

  @Put(':os/:file')
  @Roles('admin', 'engineer')
  @ApiOperation({ summary: 'Save a new version (checked first: it must render for two unlike installs and pass debconf-set-selections -c, cloud-init schema or sh -n where they apply; 400 template_invalid says why)' })
  save(@Param() p: TemplateParams, @Body() body: TemplateBody) {
    return this.templates.save(p.os, p.file, body.body, body.note);
  }
}
