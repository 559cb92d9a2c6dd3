import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Query } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { CommandGateway } from '../projection-runner/command-gateway';
import { CreatePolicyCommand } from './commands/create-policy.command';
import { DeletePolicyCommand } from './commands/delete-policy.command';
import { UpdatePolicyCommand } from './commands/update-policy.command';
import { MatchingVmDto, MatchingVmsQueryDto, PolicyDto, PolicyIdParams, toDefinition } from './policies.dto';
import { GetPolicyQuery } from './queries/get-policy.query';
import { ListPoliciesQuery } from './queries/list-policies.query';
import { MatchingVmsQuery } from './queries/matching-vms.query';
import { RetentionWorkflow } from './retention/retention.workflow';
import { SchedulerWorkflow } from './scheduler.workflow';
import { Access } from '../http/access.guard';
import { Owned, TenantScope } from '../http/owned';

const READ_MODEL = 'policies';

@ApiTags('policies')
@ApiBearerAuth()
@Controller('api/v1/policies')
export class PoliciesController {
  constructor(
    private readonly scope: TenantScope,
    private readonly gateway: CommandGateway,
    private readonly queries: QueryBus,
    private readonly scheduler: SchedulerWorkflow,
    private readonly retention: RetentionWorkflow,
  ) {}

  @Access('operate')
  @Owned({ body: { repositoryId: 'repository', 'vms.agentId': 'agent!' } })
  @Post()
  async create(@Body() body: PolicyDto) {
    await this.retention.refuseMassPrune(toDefinition(body), body.confirmPrune === true);
    const { policyId } = await this.gateway.execute(new CreatePolicyCommand(toDefinition(body)), READ_MODEL);
    return this.queries.execute(new GetPolicyQuery(policyId));
  }

  @Access('read')
  @Owned('filtered')
  @Get()
  async list() {
    return this.scope.filter(await this.queries.execute(new ListPoliciesQuery()), (p) => ({ repositoryId: p.repositoryId }));
  }

  /** What a selector picks now, as a form is filled in; declared before `:policyId`, which would take the path otherwise. */
  @Access('read')
  @Owned('filtered')
  @Get('matching-vms')
  @ApiOkResponse({ type: [MatchingVmDto] })
  async matchingVms(@Query() selector: MatchingVmsQueryDto) {
    return this.scope.filter(await this.queries.execute(new MatchingVmsQuery(selector)), (v) => ({ vmId: v.vmId }));
  }

  @Access('read')
  @Owned({ params: { policyId: 'policy' } })
  @Get(':policyId')
  get(@Param() { policyId }: PolicyIdParams) {
    return this.queries.execute(new GetPolicyQuery(policyId));
  }

  @Access('operate')
  @Owned({ params: { policyId: 'policy' }, body: { repositoryId: 'repository', 'vms.agentId': 'agent!' } })
  @Put(':policyId')
  async update(@Param() { policyId }: PolicyIdParams, @Body() body: PolicyDto) {
    await this.retention.refuseMassPrune(toDefinition(body), body.confirmPrune === true, policyId);
    await this.gateway.execute(new UpdatePolicyCommand(policyId, toDefinition(body)), READ_MODEL);
    return this.queries.execute(new GetPolicyQuery(policyId));
  }

  @Access('operate')
  @Owned({ params: { policyId: 'policy' } })
  @Delete(':policyId')
  async remove(@Param() { policyId }: PolicyIdParams) {
    await this.gateway.execute(new DeletePolicyCommand(policyId), READ_MODEL);
    return { policyId, deleted: true };
  }

  /** Backs up every VM of the policy now, outside its calendar: each VM's job, or why it got none. */
  @Access('operate')
  @Owned({ params: { policyId: 'policy' } })
  @Post(':policyId/run')
  @HttpCode(202)
  run(@Param() { policyId }: PolicyIdParams) {
    return this.scheduler.runNow(policyId);
  }
}
