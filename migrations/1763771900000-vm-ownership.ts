import { MigrationInterface, QueryRunner } from 'typeorm';

/** Agents refused a VM another agent owns, for an admin to see and resolve. */
export class VmOwnership1763771900000 implements MigrationInterface {
  name = 'VmOwnership1763771900000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_vm_ownership_conflicts (vm_id text NOT NULL, claimant_agent_id uuid NOT NULL, owner_agent_id uuid NOT NULL, refused_at timestamptz NOT NULL, PRIMARY KEY (vm_id, claimant_agent_id))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rm_vm_ownership_conflicts`);
  }
}
