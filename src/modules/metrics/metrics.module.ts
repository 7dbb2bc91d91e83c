import { Global, Module } from '@nestjs/common';
import { MetricsController } from './metrics.controller';
import { MetricsService } from './metrics.service';
import { StateMetrics } from './state.metrics';

@Global()
@Module({ controllers: [MetricsController], providers: [MetricsService, StateMetrics], exports: [MetricsService] })
export class MetricsModule {}
