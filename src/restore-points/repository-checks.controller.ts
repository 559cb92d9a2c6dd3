import { Controller, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { RescanWorkflow } from './rescan.workflow';
import { RestorePointVerificationWorkflow } from './restore-point-verification.workflow';
import { RepositoryIdParams } from '../repositories/registry/repositories.dto';
import { Access } from '../http/access.guard';
import { Owned, TenantScope } from '../http/owned';

/** Rescanning and verifying read every restore point a repository holds, so they belong to the restore points, under the repository's path. */
@ApiTags('repositories')
@ApiBearerAuth()
@Controller('api/v1/repositories')
export class RepositoryChecksController {
  constructor(
    private readonly scope: TenantScope,
    private readonly rescans: RescanWorkflow,
    private readonly verification: RestorePointVerificationWorkflow,
  ) {}

  @Access('admin')
  @Owned('global')
  @Post(':id/rescan')
  rescan(@Param() { id }: RepositoryIdParams) {
    return this.rescans.rescan(id);
  }

  /** Reads back every block of every restore point in the repository (each once) against its digests; a tenant's token, of its own VMs' points only. */
  @Access('operate')
  @Owned({ params: { id: 'repository' } })
  @Post(':id/verify')
  async verify(@Param() { id }: RepositoryIdParams) {
    return this.verification.verifyRepository(id, (await this.scope.owned())?.vmIds);
  }
}
