import { Injectable, OnModuleInit } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { FilesInUse } from '../files-in-use';
import { ExportedFileQuery } from '../../nbd/queries/exported-file.query';

/** A restore-point file served by a qemu-nbd (of any hub on this database) must not be rewritten. */
@Injectable()
export class ExportsHoldFiles implements OnModuleInit {
  constructor(
    private readonly filesInUse: FilesInUse,
    private readonly queries: QueryBus,
  ) {}

  onModuleInit(): void {
    this.filesInUse.register((files) => this.queries.execute(new ExportedFileQuery(files)));
  }
}
