import { DecideRetentionHandler } from './commands/decide-retention.handler';
import { DeferPruneHandler } from './commands/defer-prune.handler';
import { ReportsController } from '../reports/reports.controller';
import { RetentionController } from './retention.controller';
import { RetentionWorkflow } from './retention.workflow';

/** Retention (prune, preview) and the protection report; the policies themselves are src/policies/policies.feature.ts. */
export const retentionFeature = {
  controllers: [RetentionController, ReportsController],
  providers: [DecideRetentionHandler, DeferPruneHandler, RetentionWorkflow],
};
