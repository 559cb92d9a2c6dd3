import { Controller, Get, Header, Inject } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Registry } from 'prom-client';
import { METRICS_REGISTRY } from './metrics.registry';
import { Access } from '../http/access.guard';
import { Owned } from '../http/owned';

@ApiTags('operations')
@ApiBearerAuth()
@Controller('metrics')
export class MetricsController {
  constructor(@Inject(METRICS_REGISTRY) private readonly registry: Registry) {}

  @Access('read')
  @Owned('global')
  @Get()
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  metrics(): Promise<string> {
    return this.registry.metrics();
  }
}
