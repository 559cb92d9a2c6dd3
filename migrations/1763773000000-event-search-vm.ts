import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The audit's search by VM (GET /api/v1/audit/events?vmId=) without reading the store in order until a page is
 * found: a VM with few events among many would otherwise cost a scan of every event.
 */
export class EventSearchVm1763773000000 implements MigrationInterface {
  name = 'EventSearchVm1763773000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX es_events_vm ON es_events ((data->>'vmId'))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX es_events_vm`);
  }
}
