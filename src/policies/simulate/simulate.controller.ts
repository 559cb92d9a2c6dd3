import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { toDefinition } from '../policies.dto';
import { SimulatePolicyQuery } from './queries/simulate-policy.query';
import { SimulatePolicyDto } from './simulate.dto';
import { Access } from '../../http/access.guard';
import { Owned } from '../../http/owned';

@ApiTags('policies')
@ApiBearerAuth()
@Controller('api/v1/policies')
export class SimulateController {
  constructor(private readonly queries: QueryBus) {}

  /** What the policy would have done over the recorded history; changes nothing. */
  @Access('read')
  @Owned({ body: { 'policy.repositoryId': 'repository', 'policy.vms.agentId': 'agent!' } })
  @Post('simulate')
  @HttpCode(200)
  simulate(@Body() body: SimulatePolicyDto) {
    return this.queries.execute(new SimulatePolicyQuery(toDefinition(body.policy), body.from, body.to));
  }
}
