import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A chunks repository's space is its store's files, shared by its points, not the points' index files: the usage
 * history and its growth estimate follow the store's measured bytes. Replayed from zero (emptied, checkpoint
 * rewound) so the history holds the measurements already recorded.
 */
export class RepositoryStoredBytes1763773100000 implements MigrationInterface {
  name = 'RepositoryStoredBytes1763773100000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE TABLE rm_repository_stored_bytes (repository_id uuid PRIMARY KEY, stored_bytes bigint NOT NULL)`);
    await q.query(`DELETE FROM rm_repository_point_bytes`);
    await q.query(`DELETE FROM rm_repository_usage`);
    await q.query(`UPDATE projection_checkpoints SET position = NULL, rebuilt_at = now(), updated_at = now() WHERE name = 'repository-usage'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE rm_repository_stored_bytes`);
  }
}
