import { MigrationInterface, QueryRunner } from 'typeorm';

export class Policies1763770620000 implements MigrationInterface {
  name = 'Policies1763770620000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_policies (
      policy_id uuid PRIMARY KEY,
      name text NOT NULL,
      vms jsonb NOT NULL,
      repository_id uuid NOT NULL,
      schedule jsonb NOT NULL,
      full_every int NULL,
      retention jsonb NOT NULL,
      rpo_hours double precision NOT NULL,
      enabled boolean NOT NULL,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL,
      last_slot timestamptz NULL
    )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rm_policies`);
  }
}
