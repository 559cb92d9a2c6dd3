import { MigrationInterface, QueryRunner } from 'typeorm';

/** Tenants: which agents and repositories belong to one, and the tenant a token is confined to. */
export class Tenants1763771300000 implements MigrationInterface {
  name = 'Tenants1763771300000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_tenancy (resource text NOT NULL, id text NOT NULL, tenant_id text NOT NULL, PRIMARY KEY (resource, id))`);
    await q.query(`CREATE INDEX rm_tenancy_tenant ON rm_tenancy (tenant_id)`);
    await q.query(`ALTER TABLE rm_api_tokens ADD COLUMN tenant_id text NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE rm_api_tokens DROP COLUMN tenant_id`);
    await q.query(`DROP TABLE rm_tenancy`);
  }
}
