import { Controller, HttpCode, Param, Put, Req, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import { DigestUploads } from './adapters/digest-uploads';
import { AgentOwnsJobGuard } from './agent-owns-job.guard';
import { DiskDigestsParams } from './digests.dto';

/** The agent hands over the block digests of a disk it sent; the body is the binary digest file (src/wire/block-digests.ts). */
@ApiTags('backups')
@ApiBearerAuth()
@Controller('api/v1')
export class DigestsController {
  constructor(private readonly uploads: DigestUploads) {}

  @Put('backups/:jobId/disks/:diskId/digests')
  @HttpCode(200)
  @UseGuards(AgentOwnsJobGuard)
  upload(@Param() { jobId, diskId }: DiskDigestsParams, @Req() req: Request) {
    return this.uploads.receive(jobId, diskId, req);
  }
}
