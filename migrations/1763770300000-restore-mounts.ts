import { MigrationInterface, QueryRunner } from 'typeorm';

export class RestoreMounts1763770300000 implements MigrationInterface {
  name = 'RestoreMounts1763770300000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_restore_mounts (
      mount_id uuid PRIMARY KEY,
      restore_point_id text NOT NULL,
      vm_id text NOT NULL,
      repository_id uuid NOT NULL,
      disk_id text NOT NULL,
      file text NOT NULL,
      chain_files text[] NOT NULL,
      hub_instance text NOT NULL,
      status text NOT NULL,
      partition_table text NULL,
      disk_size bigint NULL,
      volumes jsonb NOT NULL,
      error text NULL,
      release_reason text NULL,
      release_detail text NULL,
      requested_by text NOT NULL,
      requested_at timestamptz NOT NULL,
      ready_at timestamptz NULL,
      ended_at timestamptz NULL,
      idle_timeout_seconds int NOT NULL,
      last_access_at timestamptz NOT NULL,
      expires_at timestamptz NULL,
      file_downloads int NOT NULL,
      archive_downloads int NOT NULL,
      bytes_downloaded bigint NOT NULL
    )`);
    await q.query(`CREATE INDEX "IDX_rm_restore_mounts_status" ON rm_restore_mounts (status)`);
    await q.query(`CREATE INDEX rm_restore_mounts_chain_files ON rm_restore_mounts USING gin (chain_files)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rm_restore_mounts`);
  }
}
