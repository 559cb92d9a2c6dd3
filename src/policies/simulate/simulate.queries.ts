import { IQueryHandler, QueryBus, QueryHandler } from '@nestjs/cqrs';
import { DomainError } from '../../eventing/domain-error';
import { problemsOf, selectVms } from '../policy.aggregate';
import { PolicyDefinition } from '../policy.events';
import { SimulatePolicyQuery } from './queries/simulate-policy.query';
import { SimulationHistoryQuery } from './queries/simulation-history.query';
import { GetRepositoryQuery } from '../../repositories/queries/get-repository.query';
import { simulate, SimulationResult } from './simulate';

/** Composes the recorded history (a read model's query) with the pure replay; no SQL of its own. */
@QueryHandler(SimulatePolicyQuery)
export class SimulatePolicyHandler implements IQueryHandler<SimulatePolicyQuery, SimulationResult & { policy: PolicyDefinition }> {
  constructor(private readonly queries: QueryBus) {}

  async execute({ policy, from, to }: SimulatePolicyQuery): Promise<SimulationResult & { policy: PolicyDefinition }> {
    const problems = problemsOf(policy);
    if (Date.parse(from) >= Date.parse(to)) problems.push('from must be before to');
    if (problems.length) throw new DomainError('invalid', problems.join('; '));
    const history = await this.queries.execute(new SimulationHistoryQuery(policy.repositoryId));
    const repository = await this.queries.execute(new GetRepositoryQuery(policy.repositoryId)).catch(() => null);
    // an immutable repository keeps pruned chains until their lock expires: that space is part of the answer; its
    // chain depth decides which backups are synthetic fulls, as it does for the backups themselves
    const settings = { immutableDays: repository?.immutableDays ?? null, ...(repository ? { maxChainDepth: repository.maxChainDepth ?? Number.MAX_SAFE_INTEGER } : {}) };
    try {
      return { policy, ...simulate(policy, new Date(from), new Date(to), selectVms(policy, history.vms), history.backups, settings) };
    } catch (error) {
      if (error instanceof RangeError) throw new DomainError('invalid', error.message);
      throw error;
    }
  }
}
