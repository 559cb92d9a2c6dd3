import { Controller, Get, Inject, Param, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { AgentTunnel } from '../../agents/agent-tunnel.service';
import { HUB_INSTANCE } from '../../config/hub-instance';
import { API_TLS, type ApiTlsIdentity } from '../../http/api-tls';
import { Access } from '../../http/access.guard';
import { Owned } from '../../http/owned';
import type { HubIdentity, SyncPointList } from '../sync-protocol';
import { SyncPointDiskParams, SyncPointParams, SyncPointsQueryDto } from './sync-source.dto';
import { SyncSourceService } from './sync-source.service';

/** This hub as the source of a sync: another hub, holding a `sync` token, lists restore points and reads their files. */
@ApiTags('sync')
@ApiBearerAuth()
@Controller('api/v1')
export class SyncSourceController {
  constructor(
    @Inject(HUB_INSTANCE) private readonly instance: string,
    @Inject(API_TLS) private readonly apiTls: ApiTlsIdentity,
    private readonly tunnel: AgentTunnel,
    private readonly source: SyncSourceService,
  ) {}

  /** The fingerprints an operator pins: the SSH host key on another hub (POST /api/v1/remotes there), the API's certificate in clients. */
  @Access('any')
  @Owned('none')
  @Get('identity')
  identity(): HubIdentity {
    const { port, hostKeyFingerprint } = this.tunnel.endpoint();
    return { hubInstance: this.instance, ssh: { port, hostKeyFingerprint }, api: { tls: this.apiTls.tls, certificateFingerprint: this.apiTls.certificateFingerprint } };
  }

  @Access('sync')
  @Owned('global')
  @Get('sync/restore-points')
  points(@Query() query: SyncPointsQueryDto): Promise<SyncPointList> {
    return this.source.points(query.repositoryId);
  }

  @Access('sync')
  @Owned('global')
  @Get('sync/restore-points/:id/disks/:diskId/digests')
  @ApiProduces('application/octet-stream')
  async digests(@Param() { id, diskId }: SyncPointDiskParams, @Res() res: Response): Promise<void> {
    res.type('application/octet-stream').send(await this.source.digests(id, diskId));
  }

  @Access('sync')
  @Owned('global')
  @Get('sync/restore-points/:id/configuration')
  @ApiProduces('application/octet-stream')
  async configuration(@Param() { id }: SyncPointParams, @Res() res: Response): Promise<void> {
    res.type('application/octet-stream').send(await this.source.configuration(id));
  }
}
