import { DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { CqrsModule } from '@nestjs/cqrs';
import { LoggerModule } from 'nestjs-pino';
import { DataSource } from 'typeorm';
import { ApiTokensProjector } from '../../projections/api-tokens/api-tokens.projector';
import { AuditController } from '../audit/audit.controller';
import { AuditService } from '../audit/audit.service';
import { ApiTokensController } from '../auth/tokens/api-tokens.controller';
import { IssueApiTokenHandler } from '../auth/tokens/issue-api-token.handler';
import { RevokeApiTokenHandler } from '../auth/tokens/revoke-api-token.handler';
import { ADMIN_TOKEN_HASH, TokenVerifier } from '../auth/token-verifier';
import { HUB_CONFIG } from '../config/hub-config';
import { EVENT_STORE } from '../event-store/event-store.port';
import { AggregateRepository } from '../eventing/aggregate-repository';
import { DomainErrorFilter } from '../http/domain-error.filter';
import { HealthController } from '../operations/health.controller';
import { MetricsController } from '../operations/metrics.controller';
import { createMetricsRegistry, METRICS_REGISTRY } from '../operations/metrics.registry';
import { ProjectionMetrics } from '../operations/projection-metrics';
import { ProjectionsController } from '../projection-runner/projections.controller';
import { DB_CONNECTION, ProjectionsService } from '../projection-runner/projections.service';
import { PROJECTORS } from '../projection-runner/projector';
import { HubRuntime } from './hub-runtime';
import { pinoHttpOptions } from './logging';

const PROJECTOR_CLASSES = [ApiTokensProjector];

@Module({})
export class HubModule {
  static create(runtime: HubRuntime): DynamicModule {
    return {
      module: HubModule,
      imports: [CqrsModule.forRoot(), LoggerModule.forRoot({ pinoHttp: pinoHttpOptions(runtime.config.logLevel) })],
      controllers: [HealthController, MetricsController, AuditController, ProjectionsController, ApiTokensController],
      providers: [
        { provide: HUB_CONFIG, useValue: runtime.config },
        { provide: DB_CONNECTION, useValue: runtime.connection },
        { provide: DataSource, useValue: runtime.dataSource },
        { provide: EVENT_STORE, useValue: runtime.store },
        { provide: ADMIN_TOKEN_HASH, useValue: runtime.adminTokenHash },
        { provide: METRICS_REGISTRY, useFactory: createMetricsRegistry },
        { provide: APP_FILTER, useClass: DomainErrorFilter },
        ...PROJECTOR_CLASSES,
        { provide: PROJECTORS, useFactory: (...projectors: unknown[]) => projectors, inject: PROJECTOR_CLASSES },
        AggregateRepository,
        ProjectionsService,
        ProjectionMetrics,
        TokenVerifier,
        AuditService,
        IssueApiTokenHandler,
        RevokeApiTokenHandler,
      ],
    };
  }
}
