import { MigrationInterface, QueryRunner } from 'typeorm';

/** A repository may write its qcow2 files encrypted; the read model shows where its key is and the key's fingerprint. */
export class EncryptedRepositories1763771600000 implements MigrationInterface {
  name = 'EncryptedRepositories1763771600000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_repositories ADD COLUMN encryption jsonb NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_repositories DROP COLUMN encryption`);
  }
}
