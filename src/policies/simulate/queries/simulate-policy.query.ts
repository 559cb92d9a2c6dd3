import { Query } from '@nestjs/cqrs';
import { PolicyDefinition } from '../../policy.events';
import { SimulationResult } from '../simulate';

/** Backtesting: the proposed policy against the recorded history; reads only, records nothing. */
export class SimulatePolicyQuery extends Query<SimulationResult & { policy: PolicyDefinition }> {
  constructor(
    readonly policy: PolicyDefinition,
    readonly from: string,
    readonly to: string,
  ) {
    super();
  }
}
