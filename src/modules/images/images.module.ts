import { Module } from '@nestjs/common';
import { OsImagesController } from './os-images.controller';
import { OsImagesRepository } from './os-images.repository';
import { OsImagesService } from './os-images.service';
import { ImageCacheService } from './image-cache.service';

@Module({
  controllers: [OsImagesController],
  providers: [OsImagesRepository, OsImagesService, ImageCacheService],
  exports: [OsImagesService, ImageCacheService],
})
export class ImagesModule {}
