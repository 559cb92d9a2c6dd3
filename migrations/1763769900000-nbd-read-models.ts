import { MigrationInterface, QueryRunner } from 'typeorm';

export class NbdReadModels1763769900000 implements MigrationInterface {
  name = 'NbdReadModels1763769900000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_nbd_leases (
      lease_id uuid PRIMARY KEY,
      host text NOT NULL,
      port int NOT NULL,
      job_id text NOT NULL,
      disk_id text NOT NULL,
      status text NOT NULL,
      allocated_at timestamptz NOT NULL,
      allocated_by text NOT NULL,
      released_at timestamptz NULL,
      release_reason text NULL
    )`);
    await q.query(`CREATE INDEX rm_nbd_leases_host_status ON rm_nbd_leases (host, status)`);
    await q.query(`CREATE TABLE rm_qemu_nbd_processes (
      lease_id uuid PRIMARY KEY,
      port int NOT NULL,
      pid int NULL,
      file text NOT NULL,
      export_name text NOT NULL,
      job_id text NOT NULL,
      disk_id text NOT NULL,
      read_only boolean NOT NULL,
      state text NOT NULL,
      exit_code int NULL,
      signal text NULL,
      error text NULL,
      requested_at timestamptz NOT NULL,
      started_at timestamptz NULL,
      ended_at timestamptz NULL
    )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rm_qemu_nbd_processes`);
    await q.query(`DROP TABLE rm_nbd_leases`);
  }
}
