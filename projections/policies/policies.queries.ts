import { IQueryHandler, QueryHandler } from '@nestjs/cqrs';
import { DataSource } from 'typeorm';
import { DomainError } from '../../src/eventing/domain-error';
import { GetPolicyQuery } from '../../src/policies/queries/get-policy.query';
import { ListPoliciesQuery } from '../../src/policies/queries/list-policies.query';
import { PolicySummary } from '../../src/policies/queries/policy-summary';
import { PolicyView } from './policy.entity';

function summary(p: PolicyView): PolicySummary {
  return {
    policyId: p.policyId,
    name: p.name,
    vms: p.vms,
    repositoryId: p.repositoryId,
    schedule: p.schedule,
    fullEvery: p.fullEvery,
    retention: p.retention,
    rpoHours: p.rpoHours,
    enabled: p.enabled,
    drill: p.drill,
    createdAt: p.createdAt.toISOString(),
    updatedAt: p.updatedAt.toISOString(),
    lastSlot: p.lastSlot?.toISOString() ?? null,
  };
}

@QueryHandler(ListPoliciesQuery)
export class ListPoliciesHandler implements IQueryHandler<ListPoliciesQuery, PolicySummary[]> {
  constructor(private readonly dataSource: DataSource) {}

  async execute(): Promise<PolicySummary[]> {
    return (await this.dataSource.getRepository(PolicyView).find({ order: { name: 'ASC', createdAt: 'ASC' } })).map(summary);
  }
}

@QueryHandler(GetPolicyQuery)
export class GetPolicyHandler implements IQueryHandler<GetPolicyQuery, PolicySummary> {
  constructor(private readonly dataSource: DataSource) {}

  async execute({ policyId }: GetPolicyQuery): Promise<PolicySummary> {
    const policy = await this.dataSource.getRepository(PolicyView).findOneBy({ policyId });
    if (!policy) throw new DomainError('not_found', `policy ${policyId} does not exist`);
    return summary(policy);
  }
}
