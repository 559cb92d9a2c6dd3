import { CommandHandler, ICommandHandler, QueryBus } from '@nestjs/cqrs';
import { AggregateRepository } from '../../eventing/aggregate-repository';
import { Appended } from '../../eventing/command';
import { OwnerTenantQuery } from '../../http/owner-tenant.query';
import { tenancyAggregate } from '../tenancy.aggregate';
import { tenancyStream, TenantResource } from '../tenancy.events';
import { AssignTenantCommand } from './assign-tenant.command';

@CommandHandler(AssignTenantCommand)
export class AssignTenantHandler implements ICommandHandler<AssignTenantCommand> {
  constructor(
    private readonly aggregates: AggregateRepository,
    private readonly queries: QueryBus,
  ) {}

  async execute(command: AssignTenantCommand): Promise<Appended & { resource: TenantResource; id: string; tenantId: string | null }> {
    const { exists } = await this.queries.execute(new OwnerTenantQuery(command.resource, command.id));
    const decision = { kind: 'assign', resource: command.resource, id: command.id, tenantId: command.tenantId, exists } as const;
    const result = await this.aggregates.execute(tenancyStream(command.resource, command.id), tenancyAggregate, decision, command);
    return { resource: command.resource, id: command.id, tenantId: command.tenantId, position: result.position };
  }
}
