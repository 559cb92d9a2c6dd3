import { MigrationInterface, QueryRunner } from 'typeorm';

/** Whole-VM and disk restores to a hypervisor host: one row per restore, folded from its vm-restore-<id> stream. */
export class Restores1763770900000 implements MigrationInterface {
  name = 'Restores1763770900000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_restores (
      restore_id uuid PRIMARY KEY,
      restore_point_id text NOT NULL,
      vm_id text NOT NULL,
      repository_id uuid NOT NULL,
      agent_id uuid NOT NULL,
      mode text NOT NULL,
      target jsonb NOT NULL,
      status text NOT NULL,
      phase text NOT NULL,
      disks jsonb NOT NULL,
      domain jsonb NULL,
      error text NULL,
      damaged jsonb NOT NULL,
      known_damage jsonb NOT NULL,
      drill jsonb NULL,
      correlation_id text NOT NULL,
      requested_at timestamptz NOT NULL,
      finished_at timestamptz NULL,
      duration_ms integer NULL
    )`);
    await q.query(`CREATE INDEX rm_restores_vm ON rm_restores (vm_id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rm_restores`);
  }
}
