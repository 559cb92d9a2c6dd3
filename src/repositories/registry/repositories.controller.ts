import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { RepositoryView } from '../../../projections/repositories/repository.entity';
import { DomainError } from '../../eventing/domain-error';
import { ProjectionsService } from '../../projection-runner/projections.service';
import { RescanService } from '../../restore-points/rescan.service';
import { RegisterRepositoryDto, RepositoryIdParams } from './repositories.dto';
import { RepositoriesService } from './repositories.service';
import { measureCapacity } from './capacity';

const KIND_FIELDS = { local: ['path'], nfs: ['server', 'export', 'options'], cifs: ['share', 'username', 'passwordFile', 'options'] } as const;

@ApiTags('repositories')
@ApiBearerAuth()
@Controller('api/v1/repositories')
export class RepositoriesController {
  constructor(
    private readonly repositories: RepositoriesService,
    private readonly rescans: RescanService,
    private readonly projections: ProjectionsService,
  ) {}

  @Post()
  async register(@Body() body: RegisterRepositoryDto) {
    const foreign = Object.keys(body).filter((k) => (body as unknown as Record<string, unknown>)[k] !== undefined).filter((k) => k !== 'name' && k !== 'kind' && !(KIND_FIELDS[body.kind] as readonly string[]).includes(k));
    if (foreign.length) throw new DomainError('invalid', `${foreign.join(', ')} do(es) not apply to a ${body.kind} repository`);
    const { repositoryId, position } = await this.repositories.register({
      name: body.name,
      kind: body.kind,
      path: body.path,
      nfs: body.kind === 'nfs' ? { server: body.server!, export: body.export!, options: body.options ?? '' } : undefined,
      cifs: body.kind === 'cifs' ? { share: body.share!, username: body.username!, passwordFile: body.passwordFile!, options: body.options ?? '' } : undefined,
    });
    await this.projections.waitFor('repositories', position);
    return this.get({ id: repositoryId });
  }

  @Get()
  async list() {
    return Promise.all((await this.repositories.activeViews()).map((v) => this.describe(v)));
  }

  @Get(':id')
  async get(@Param() { id }: RepositoryIdParams) {
    const view = (await this.repositories.activeViews()).find((v) => v.repositoryId === id);
    if (!view) throw new DomainError('not_found', `repository ${id} does not exist`);
    return this.describe(view);
  }

  @Delete(':id')
  @HttpCode(204)
  async remove(@Param() { id }: RepositoryIdParams) {
    await this.projections.waitForCaughtUp('restore-points');
    const position = await this.repositories.remove(id);
    await this.projections.waitFor('repositories', position);
  }

  @Post(':id/rescan')
  async rescan(@Param() { id }: RepositoryIdParams) {
    const report = await this.rescans.rescan(id);
    await this.projections.waitFor('restore-points', report.position);
    const { position: _position, ...rest } = report;
    return rest;
  }

  private async describe(v: RepositoryView) {
    const live = await measureCapacity(v.root).catch(() => null);
    return {
      repositoryId: v.repositoryId,
      name: v.name,
      kind: v.kind,
      path: v.root,
      source: v.source,
      totalBytes: live?.totalBytes ?? null,
      freeBytes: live?.freeBytes ?? null,
      usedBytes: live?.usedBytes ?? null,
      lowSpace: v.lowSpace,
      registeredAt: v.registeredAt,
    };
  }
}
