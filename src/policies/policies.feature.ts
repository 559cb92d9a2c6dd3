import { Clock } from './clock';
import { CreatePolicyHandler } from './commands/create-policy.handler';
import { DeletePolicyHandler } from './commands/delete-policy.handler';
import { RetryPolicySlotHandler } from './commands/retry-policy-slot.handler';
import { SkipPolicySlotHandler } from './commands/skip-policy-slot.handler';
import { TakePolicySlotsHandler } from './commands/take-policy-slots.handler';
import { UpdatePolicyHandler } from './commands/update-policy.handler';
import { PoliciesController } from './policies.controller';
import { SchedulePreviewController } from './schedule-preview.controller';
import { PolicyStates } from './policy-states';
import { SchedulerWorkflow } from './scheduler.workflow';
import { SimulatePolicyHandler } from './simulate/simulate.queries';
import { SimulateController } from './simulate/simulate.controller';

/** Protection policies and the scheduler that runs them. */
export const policiesFeature = {
  controllers: [SimulateController, PoliciesController, SchedulePreviewController],
  providers: [CreatePolicyHandler, UpdatePolicyHandler, DeletePolicyHandler, TakePolicySlotsHandler, SkipPolicySlotHandler, RetryPolicySlotHandler, PolicyStates, SchedulerWorkflow, Clock, SimulatePolicyHandler],
};
