import { MigrationInterface, QueryRunner } from 'typeorm';

export class ApiTokens1763769700000 implements MigrationInterface {
  name = 'ApiTokens1763769700000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_api_tokens (
      token_id uuid PRIMARY KEY,
      name text NOT NULL,
      token_hash text NOT NULL UNIQUE,
      status text NOT NULL,
      issued_by text NOT NULL,
      issued_at timestamptz NOT NULL,
      revoked_at timestamptz NULL
    )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rm_api_tokens`);
  }
}
