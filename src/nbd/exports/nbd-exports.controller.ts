import { Controller, Get } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { QemuNbdProcessesQuery } from '../queries/qemu-nbd-processes.query';
import { Access } from '../../http/access.guard';
import { Owned } from '../../http/owned';

/**
 * Only what the hub's qemu-nbd processes are. There is no route that exports a file by its path: a token holder could
 * name any file the hub (root) can open and get it served writable. Files are served only by the features that know
 * what they are: a backup's targets, a restore point's chain (POST /api/v1/restore-points/{id}/exports, restores).
 */
@ApiTags('nbd')
@ApiBearerAuth()
@Controller('api/v1/nbd')
export class NbdExportsController {
  constructor(private readonly queries: QueryBus) {}

  @Access('read')
  @Owned('global')
  @Get('processes')
  processes() {
    return this.queries.execute(new QemuNbdProcessesQuery());
  }
}
