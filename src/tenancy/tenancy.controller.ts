import { Body, Controller, Param, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Access } from '../http/access.guard';
import { CommandGateway } from '../projection-runner/command-gateway';
import { AssignTenantCommand } from './commands/assign-tenant.command';
import { Owned } from '../http/owned';
import { AgentIdParams, AssignTenantDto, RepositoryIdParams } from './tenancy.dto';

/** The read model the ownership checks read: a tenant's token sees its new agent or repository on its very next request. */
const READ_MODEL = 'tenancy';

/** An admin gives agents (with their VMs and everything backed up of them) and repositories to tenants. */
@ApiTags('tenancy')
@ApiBearerAuth()
@Controller('api/v1')
export class TenancyController {
  constructor(private readonly gateway: CommandGateway) {}

  @Access('admin')
  @Owned('global')
  @Put('agents/:agentId/tenant')
  assignAgent(@Param() { agentId }: AgentIdParams, @Body() { tenantId }: AssignTenantDto) {
    return this.gateway.execute(new AssignTenantCommand('agent', agentId, tenantId), READ_MODEL);
  }

  @Access('admin')
  @Owned('global')
  @Put('repositories/:id/tenant')
  assignRepository(@Param() { id }: RepositoryIdParams, @Body() { tenantId }: AssignTenantDto) {
    return this.gateway.execute(new AssignTenantCommand('repository', id, tenantId), READ_MODEL);
  }
}
