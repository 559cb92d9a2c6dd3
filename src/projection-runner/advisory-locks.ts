import { Client, ClientConfig } from 'pg';

/**
 * One PostgreSQL session holding the advisory locks of the projections a hub leads. A lock lives as long as the
 * session that took it: when the connection drops, every projection taken in it is lost at once (the generation
 * moves on) and another hub's runner may take them. One session for all of a hub's projections: a hub that led
 * them held one connection per projection, and a standby hub opened and closed one per projection every second
 * to ask whether it could lead (docs/benchmarks.md, fleet).
 */
export class AdvisoryLocks {
  private client?: Client;
  private connecting?: Promise<Client>;
  private generation = 0;
  /** The runners ask at once; a pg client takes one query at a time (it would queue them itself, deprecated in pg 9). */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly config: ClientConfig,
    private readonly applicationName = 'sendense-projections',
  ) {}

  /** The generation of the session that now holds the lock, or null when another session holds it. */
  async tryLock(namespace: number, name: string): Promise<number | null> {
    const client = await this.session();
    const generation = this.generation;
    const result = await this.inTurn(() => client.query<{ locked: boolean }>(`SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked`, [namespace, name]));
    return result.rows[0].locked && this.holds(generation) ? generation : null;
  }

  /** Whether a lock taken in `generation` is still held: the session that took it is still up. */
  holds(generation: number): boolean {
    return this.client !== undefined && generation === this.generation;
  }

  async unlock(namespace: number, name: string, generation: number): Promise<void> {
    if (!this.holds(generation)) return;
    const client = this.client!;
    await this.inTurn(() => client.query(`SELECT pg_advisory_unlock($1, hashtext($2))`, [namespace, name])).catch(() => undefined);
  }

  private inTurn<T>(query: () => Promise<T>): Promise<T> {
    const next = this.queue.then(query);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /**
   * Asks the server whether the session still lives: a connection a NAT or firewall dropped while idle looks alive
   * here until something is sent on it, while the server may have ended the session (and freed its locks) long ago.
   * A session that does not answer is dropped, so that the next `tryLock` opens a new one.
   */
  async ping(): Promise<void> {
    const client = this.client;
    if (!client) return;
    await this.inTurn(() => client.query('SELECT 1')).catch(() => this.dropped(client));
  }

  /** Ends the session, and with it every lock it holds: another session can take them once this resolves. */
  async close(): Promise<void> {
    const client = this.client ?? (await this.connecting?.catch(() => undefined));
    await this.dropped(client);
  }

  private session(): Promise<Client> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= (async () => {
      const client = new Client({ ...this.config, application_name: this.applicationName });
      client.on('error', () => void this.dropped(client));
      try {
        await client.connect();
      } catch (error) {
        await client.end().catch(() => undefined);
        throw error;
      } finally {
        this.connecting = undefined;
      }
      this.client = client;
      return client;
    })();
    return this.connecting;
  }

  /** Forgets the session (its locks with it) and ends its connection; resolves once the server has let them go. */
  private async dropped(client: Client | undefined): Promise<void> {
    if (!client || this.client !== client) return;
    this.client = undefined;
    this.generation++;
    await client.end().catch(() => undefined);
  }
}
