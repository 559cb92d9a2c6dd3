import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Secrets every hub process of the database must read and no event may hold: first, the sync token each remote
 * issued (in one process's data dir, a sync job ran only on the hub that registered its remote; another hub's
 * scheduled or taken-over run failed reading a file it does not have). Not a read model: nothing rebuilds it.
 */
export class HubSecrets1763773500000 implements MigrationInterface {
  name = 'HubSecrets1763773500000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE hub_secrets (kind text NOT NULL, id text NOT NULL, secret text NOT NULL, stored_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (kind, id))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE hub_secrets`);
  }
}
