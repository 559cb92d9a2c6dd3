import { Injectable, OnModuleInit } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { FilesInUse } from '../../restore-points/files-in-use';

/** A restore-point file served by a qemu-nbd (of any hub on this database) must not be rewritten. */
@Injectable()
export class ExportsHoldFiles implements OnModuleInit {
  constructor(
    private readonly filesInUse: FilesInUse,
    private readonly dataSource: DataSource,
  ) {}

  onModuleInit(): void {
    this.filesInUse.register(async (files) => {
      const rows: { file: string; lease_id: string }[] = await this.dataSource.query(
        `SELECT file, lease_id FROM rm_qemu_nbd_processes WHERE state IN ('starting', 'running') AND file = ANY($1::text[]) LIMIT 1`,
        [files],
      );
      return rows.length ? `${rows[0].file} is exported by NBD lease ${rows[0].lease_id}` : null;
    });
  }
}
