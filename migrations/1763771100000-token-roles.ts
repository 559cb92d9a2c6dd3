import { MigrationInterface, QueryRunner } from 'typeorm';

/** Tokens carry a role. Rows from before roles get what legacyRole() gives their events on a rebuild. */
export class TokenRoles1763771100000 implements MigrationInterface {
  name = 'TokenRoles1763771100000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_api_tokens ADD COLUMN role text NOT NULL DEFAULT 'operator'`);
    await q.query(`UPDATE rm_api_tokens SET role = 'agent' WHERE name LIKE 'agent-%'`);
    await q.query(`ALTER TABLE rm_api_tokens ALTER COLUMN role DROP DEFAULT`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_api_tokens DROP COLUMN role`);
  }
}
