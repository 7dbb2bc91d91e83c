import { Module } from '@nestjs/common';
import { OsImagesController } from './os-images.controller';
import { OsImagesRepository } from './os-images.repository';
import { OsImagesService } from './os-images.service';

@Module({
  controllers: [OsImagesController],
  providers: [OsImagesRepository, OsImagesService],
  exports: [OsImagesService],
})
export class ImagesModule {}
