import { MigrationInterface, QueryRunner } from 'typeorm';

export class Agents1763770100000 implements MigrationInterface {
  name = 'Agents1763770100000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_agents (
      agent_id uuid PRIMARY KEY,
      name text NOT NULL UNIQUE,
      fingerprint text NOT NULL UNIQUE,
      public_key text NOT NULL,
      connected boolean NOT NULL,
      remote_address text NULL,
      last_seen_at timestamptz NULL,
      registered_at timestamptz NOT NULL
    )`);
    await q.query(`CREATE TABLE rm_vms (
      vm_id text PRIMARY KEY,
      agent_id uuid NOT NULL,
      name text NOT NULL,
      disks jsonb NOT NULL,
      reported_at timestamptz NOT NULL
    )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rm_vms`);
    await q.query(`DROP TABLE rm_agents`);
  }
}
