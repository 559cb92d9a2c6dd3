import { Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { PolicyIdParams, PreviewRulesQuery, previewRules, retentionResponse } from './retention.dto';
import { RetentionWorkflow } from './retention.workflow';
import { Access } from '../../http/access.guard';
import { Owned } from '../../http/owned';

/** Pruning works on the chains' files, so it goes through the retention workflow. */
@ApiTags('policies')
@ApiBearerAuth()
@Controller('api/v1/policies')
export class RetentionController {
  constructor(private readonly retention: RetentionWorkflow) {}

  @Access('read')
  @Owned({ params: { id: 'policy' } })
  @Get(':id/prune-preview')
  async preview(@Param() { id }: PolicyIdParams, @Query() rules: PreviewRulesQuery) {
    const { policy, chains } = await this.retention.preview(id, previewRules(rules));
    return retentionResponse(policy, chains);
  }

  @Access('operate')
  @Owned({ params: { id: 'policy' } })
  @Post(':id/prune')
  @HttpCode(200)
  async prune(@Param() { id }: PolicyIdParams) {
    const { policy, chains } = await this.retention.prune(id);
    return retentionResponse(policy, chains);
  }
}
