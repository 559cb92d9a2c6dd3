import { Controller, Get, Header, HttpCode, Param, Put, Req, StreamableFile, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import { JobUploads } from './adapters/job-uploads';
import { AgentOwnsJobGuard } from './agent-owns-job.guard';
import { DiskDigestsParams, JobParams } from './digests.dto';
import { Access } from '../http/access.guard';
import { Owned } from '../http/owned';

/**
 * The agent hands over the block digests of a disk it sent (the body is the binary digest file,
 * src/wire/block-digests.ts) and the VM's configuration (a JSON document, src/wire/vm-configuration.ts, sent as
 * application/octet-stream so its size limit is ours, not the JSON parser's).
 */
@ApiTags('backups')
@ApiBearerAuth()
@Controller('api/v1')
export class DigestsController {
  constructor(private readonly uploads: JobUploads) {}

  @Access('agent')
  @Owned({ params: { jobId: 'job' } })
  @Put('backups/:jobId/disks/:diskId/digests')
  @HttpCode(200)
  @UseGuards(AgentOwnsJobGuard)
  upload(@Param() { jobId, diskId }: DiskDigestsParams, @Req() req: Request) {
    return this.uploads.receive(jobId, diskId, req);
  }

  /** A full whose target started from a point (`knownFrom`): the digests of that point's blocks, which the agent need not send. */
  @Access('agent')
  @Owned({ params: { jobId: 'job' } })
  @Get('backups/:jobId/disks/:diskId/known-digests')
  @Header('Content-Type', 'application/octet-stream')
  @UseGuards(AgentOwnsJobGuard)
  async known(@Param() { jobId, diskId }: DiskDigestsParams) {
    return new StreamableFile(await this.uploads.knownDigests(jobId, diskId));
  }

  @Access('agent')
  @Owned({ params: { jobId: 'job' } })
  @Put('backups/:jobId/configuration')
  @HttpCode(200)
  @UseGuards(AgentOwnsJobGuard)
  configuration(@Param() { jobId }: JobParams, @Req() req: Request) {
    return this.uploads.receiveConfiguration(jobId, req);
  }
}
