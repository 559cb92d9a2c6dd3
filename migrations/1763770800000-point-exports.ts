import { MigrationInterface, QueryRunner } from 'typeorm';

export class PointExports1763770800000 implements MigrationInterface {
  name = 'PointExports1763770800000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_point_exports (
      export_id uuid PRIMARY KEY,
      restore_point_id text NOT NULL,
      vm_id text NOT NULL,
      repository_id uuid NOT NULL,
      hub_instance text NOT NULL,
      tls boolean NOT NULL,
      disks jsonb NOT NULL,
      status text NOT NULL,
      opened_at timestamptz NOT NULL,
      opened_by text NOT NULL,
      closed_at timestamptz NULL,
      close_reason text NULL,
      close_detail text NULL
    )`);
    await q.query(`CREATE INDEX "IDX_rm_point_exports_restore_point_id" ON rm_point_exports (restore_point_id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rm_point_exports`);
  }
}
