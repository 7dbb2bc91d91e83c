import { Body, Controller, Delete, Get, HttpCode, Param, Put, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { createZodDto } from 'nestjs-zod';
import { READ_ROLES } from '../../common/roles';
import { namedParam } from '../../common/http/params';
import { Roles } from '../auth/auth.decorators';
import { OsImagesService } from './os-images.service';
import { OS_IMAGE_NAME, osImageInput } from './os-images.schemas';

class OsImageBody extends createZodDto(osImageInput) {}
const imageName = namedParam(OS_IMAGE_NAME, 'name', 'an image name such as debian-12-20261207');

@ApiTags('images')
@ApiBearerAuth()
@Controller('images')
export class OsImagesController {
  constructor(private readonly images: OsImagesService) {}

  @Get() @Roles(...READ_ROLES, 'billing') @ApiOperation({ summary: 'OS images rented servers are deployed from (image installs)' })
  list() {
    return this.images.list();
  }

  @Get(':name') @Roles(...READ_ROLES, 'billing') get(@Param('name') name: string) {
    return this.images.get(imageName(name));
  }

  @Put(':name') @Roles('admin', 'engineer')
  @ApiOperation({ summary: 'Register or change an OS image (what `racksmith images build` printed): its file on the agent, where agents fetch it, SHA-256, disk size. 201 when created.' })
  async put(@Param('name') name: string, @Body() body: OsImageBody, @Res({ passthrough: true }) reply: FastifyReply) {
    const { image, created } = await this.images.put(imageName(name), body);
    void reply.status(created ? 201 : 200);
    return image;
  }

  @Delete(':name') @Roles('admin', 'engineer') @HttpCode(204) @ApiOperation({ summary: 'Forget an image (installed servers keep their disks; its file stays on the agents)' })
  async remove(@Param('name') name: string) {
    await this.images.remove(imageName(name));
  }
}
