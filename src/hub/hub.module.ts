import { DynamicModule, MiddlewareConsumer, Module, NestModule, RequestMethod, Type } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import { AccessGuard } from '../http/access.guard';
import { liveFeature } from '../live/live.feature';
import { TenantGuard } from '../http/owned';
import { tenancyFeature } from '../tenancy/tenancy.feature';
import { syncFeature } from '../sync/sync.feature';
import { CqrsModule } from '@nestjs/cqrs';
import { LoggerModule } from 'nestjs-pino';
import { DataSource } from 'typeorm';
import { READ_MODELS } from '../../projections/read-models';
import { agentsFeature } from '../agents/agents.feature';
import { auditFeature } from '../audit/audit.feature';
import { diskImagesFeature } from '../disk-images/disk-images.feature';
import { authFeature } from '../auth/auth.feature';
import { ADMIN_TOKEN_HASH } from '../auth/token-verifier';
import { HUB_CONFIG } from '../config/hub-config';
import { EVENT_STORE } from '../event-store/event-store.port';
import { AggregateRepository } from '../eventing/aggregate-repository';
import { DatabaseProbe } from '../database/database-probe';
import { DomainErrorFilter } from '../http/domain-error.filter';
import { API_TLS } from '../http/api-tls';
import { nbdFeature } from '../nbd/nbd.feature';
import { repositoriesFeature } from '../repositories/repositories.feature';
import { restorePointsFeature } from '../restore-points/restore-points.feature';
import { restoreFeature } from '../restore/restore.feature';
import { backupsFeature } from '../backups/backups.feature';
import { policiesFeature } from '../policies/policies.feature';
import { retentionFeature } from '../policies/retention/retention.feature';
import { vmRestoreFeature } from '../vm-restore/vm-restore.feature';
import { HealthController } from '../operations/health.controller';
import { MetricsController } from '../operations/metrics.controller';
import { createMetricsRegistry, METRICS_REGISTRY } from '../operations/metrics.registry';
import { ProjectionMetrics } from '../operations/projection-metrics';
import { ProjectionsController } from '../projection-runner/projections.controller';
import { CommandGateway } from '../projection-runner/command-gateway';
import { DB_CONNECTION, ProjectionsService } from '../projection-runner/projections.service';
import { HubLiveness } from '../projection-runner/hub-liveness';
import { PROJECTORS } from '../projection-runner/projector';
import { HUB_INSTANCE, hubInstanceId } from '../config/hub-instance';
import { HubRuntime } from './hub-runtime';
import { pinoHttpOptions } from './logging';
import { RefuseNulMiddleware } from '../http/refuse-nul.middleware';

interface Feature {
  controllers: Type[];
  providers: Type[];
}

const FEATURES: Feature[] = [auditFeature, authFeature, nbdFeature, repositoriesFeature, restorePointsFeature, agentsFeature, backupsFeature, restoreFeature, policiesFeature, retentionFeature, diskImagesFeature, vmRestoreFeature, liveFeature, tenancyFeature, syncFeature];

@Module({})
export class HubModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    // a module's middleware runs after the body parsers, which the app's own (create-hub-app.ts) precede
    consumer.apply(RefuseNulMiddleware).forRoutes({ path: '{*path}', method: RequestMethod.ALL });
  }

  static create(runtime: HubRuntime): DynamicModule {
    const projectors = READ_MODELS.map((m) => m.projector);
    return {
      module: HubModule,
      imports: [CqrsModule.forRoot(), LoggerModule.forRoot({ pinoHttp: pinoHttpOptions(runtime.config.logLevel) })],
      controllers: [HealthController, MetricsController, ProjectionsController, ...FEATURES.flatMap((f) => f.controllers)],
      providers: [
        { provide: HUB_CONFIG, useValue: runtime.config },
        { provide: HUB_INSTANCE, useValue: hubInstanceId(runtime.config.dataDir) },
        { provide: DB_CONNECTION, useValue: runtime.connection },
        { provide: DataSource, useValue: runtime.dataSource },
        { provide: EVENT_STORE, useValue: runtime.store },
        { provide: ADMIN_TOKEN_HASH, useValue: runtime.adminTokenHash },
        { provide: API_TLS, useValue: { tls: !!runtime.apiCertificate, certificateFingerprint: runtime.apiCertificate?.fingerprint ?? null } },
        { provide: METRICS_REGISTRY, useFactory: createMetricsRegistry },
        { provide: APP_FILTER, useClass: DomainErrorFilter },
        { provide: APP_GUARD, useExisting: AccessGuard },
        { provide: APP_GUARD, useExisting: TenantGuard },
        ...projectors,
        ...READ_MODELS.flatMap((m) => m.queryHandlers),
        { provide: PROJECTORS, useFactory: (...all: unknown[]) => all, inject: projectors },
        AggregateRepository,
        ProjectionsService,
        HubLiveness,
        CommandGateway,
        ProjectionMetrics,
        DatabaseProbe,
        ...FEATURES.flatMap((f) => f.providers),
      ],
    };
  }
}
