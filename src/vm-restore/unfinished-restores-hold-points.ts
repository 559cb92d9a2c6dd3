import { Injectable, OnModuleInit } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { realpath } from 'node:fs/promises';
import { FilesInUse } from '../restore-points/files-in-use';
import { PointView } from './adapters/point-view';
import { ListRestoresQuery } from './queries/list-restores.query';

/**
 * A restore holds its point from the moment it is accepted, not only once its exports serve it: an operator who sees
 * a restore running must not be able to delete the point under it while it starts. The read model shows a restore
 * before the request answers, on every hub of this database.
 */
@Injectable()
export class UnfinishedRestoresHoldPoints implements OnModuleInit {
  constructor(
    private readonly filesInUse: FilesInUse,
    private readonly queries: QueryBus,
    private readonly view: PointView,
  ) {}

  onModuleInit(): void {
    this.filesInUse.register((files) => this.blocker(files));
  }

  private async blocker(files: string[]): Promise<string | null> {
    const wanted = new Set(files);
    for (const restore of await this.queries.execute(new ListRestoresQuery({ unfinished: true, limit: 1_000 }))) {
      const found = await this.view.point(restore.vmId, restore.repositoryId, restore.restorePointId).catch(() => null);
      if (!found) continue;
      // absolute and with symlinks resolved, as the delete names them
      const held = await Promise.all(this.view.files(found.root, found.point).map((d) => realpath(d.absolute).catch(() => d.absolute)));
      const file = held.find((f) => wanted.has(f));
      if (file) return `${file} is read by restore ${restore.restoreId}, which has not ended`;
    }
    return null;
  }
}
