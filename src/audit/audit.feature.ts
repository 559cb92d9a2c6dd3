import { AuditController } from './audit.controller';
import { CorrelationEventsHandler, SearchEventsHandler, StreamEventsHandler } from './audit.queries';

export const auditFeature = {
  controllers: [AuditController],
  providers: [StreamEventsHandler, CorrelationEventsHandler, SearchEventsHandler],
};
