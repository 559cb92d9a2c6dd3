import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';

/**
 * Secrets every hub process of the database reads and no event may hold (the event log is read by audits and
 * replays), by kind and id, in `hub_secrets`, in clear: a dump, a replica or a role that reads this table reads
 * them (docs/security.md, Assets).
 */
@Injectable()
export class HubSecrets {
  constructor(private readonly dataSource: DataSource) {}

  /** Refuses (a unique violation) a secret already held under that kind and id. */
  async put(kind: string, id: string, secret: string): Promise<void> {
    await this.dataSource.query(`INSERT INTO hub_secrets (kind, id, secret) VALUES ($1, $2, $3)`, [kind, id, secret]);
  }

  /** Stores it unless one is held under that kind and id already; whether it was stored. */
  async putIfAbsent(kind: string, id: string, secret: string): Promise<boolean> {
    const rows = await this.dataSource.query(`INSERT INTO hub_secrets (kind, id, secret) VALUES ($1, $2, $3) ON CONFLICT (kind, id) DO NOTHING RETURNING id`, [kind, id, secret]);
    return rows.length > 0;
  }

  /** Stores it in place of the one held, if any; that one, or null. */
  async replace(kind: string, id: string, secret: string): Promise<string | null> {
    return this.dataSource.transaction(async (m) => {
      const [held] = await m.query(`SELECT secret FROM hub_secrets WHERE kind = $1 AND id = $2 FOR UPDATE`, [kind, id]);
      await m.query(`INSERT INTO hub_secrets (kind, id, secret) VALUES ($1, $2, $3) ON CONFLICT (kind, id) DO UPDATE SET secret = EXCLUDED.secret, stored_at = now()`, [kind, id, secret]);
      return held ? (held.secret as string) : null;
    });
  }

  /**
   * Undoes a `replace`: puts `previous` back (or removes the secret, when there was none) only while `mine` is still
   * the one held, so that a replacement made since is kept.
   */
  async undo(kind: string, id: string, mine: string, previous: string | null): Promise<void> {
    if (previous === null) await this.dataSource.query(`DELETE FROM hub_secrets WHERE kind = $1 AND id = $2 AND secret = $3`, [kind, id, mine]);
    else await this.dataSource.query(`UPDATE hub_secrets SET secret = $4, stored_at = now() WHERE kind = $1 AND id = $2 AND secret = $3`, [kind, id, mine, previous]);
  }

  async get(kind: string, id: string): Promise<string | null> {
    const [row] = await this.dataSource.query(`SELECT secret FROM hub_secrets WHERE kind = $1 AND id = $2`, [kind, id]);
    return row ? (row.secret as string) : null;
  }

  async remove(kind: string, id: string): Promise<void> {
    await this.dataSource.query(`DELETE FROM hub_secrets WHERE kind = $1 AND id = $2`, [kind, id]);
  }
}
