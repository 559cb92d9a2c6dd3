import { MigrationInterface, QueryRunner } from 'typeorm';

/** A policy may schedule recovery drills: the read model shows their calendar beside the backups'. */
export class PolicyDrills1763771000000 implements MigrationInterface {
  name = 'PolicyDrills1763771000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_policies ADD COLUMN drill jsonb NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_policies DROP COLUMN drill`);
  }
}
