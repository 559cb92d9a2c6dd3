import { Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { ProjectionNameParams } from './projection-name.dto';
import { ProjectionsService } from './projections.service';
import { Access } from '../http/access.guard';
import { Owned } from '../http/owned';

@ApiTags('projections')
@ApiBearerAuth()
@Controller('api/v1/projections')
export class ProjectionsController {
  constructor(private readonly projections: ProjectionsService) {}

  @Access('read')
  @Owned('global')
  @Get()
  list() {
    return this.projections.list();
  }

  @Access('admin')
  @Owned('global')
  @Post(':name/rebuild')
  @HttpCode(202)
  async rebuild(@Param() params: ProjectionNameParams) {
    await this.projections.rebuild(params.name);
    return { name: params.name, rebuilding: true };
  }
}
