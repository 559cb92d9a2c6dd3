import { AuditController } from './audit.controller';
import { CorrelationEventsHandler, StreamEventsHandler } from './audit.queries';

export const auditFeature = {
  controllers: [AuditController],
  providers: [StreamEventsHandler, CorrelationEventsHandler],
};
