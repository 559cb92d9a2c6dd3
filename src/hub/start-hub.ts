import { INestApplication } from '@nestjs/common';
import { mkdirSync } from 'node:fs';
import { Pool } from 'pg';
import pino from 'pino';
import { DataSource } from 'typeorm';
import { READ_MODEL_ENTITIES } from '../../projections/read-model-entities';
import { ensureAdminToken } from '../auth/admin-token';
import { hashToken } from '../auth/token-hash';
import { TokenVerifier } from '../auth/token-verifier';
import { HubConfig, loadHubConfig } from '../config/hub-config';
import { createDataSource, runMigrations } from '../database/data-source';
import { connectionFromUrl, DATABASE_LOST_EXIT_CODE, DbConnection, pgClientConfig, pgPoolConfig } from '../database/db-connection';
import { EmbeddedDatabase, startEmbeddedPostgres } from '../database/embedded-postgres';
import { EventStore } from '../event-store/event-store.port';
import { EventStoreDbEventStore } from '../event-store/eventstoredb/eventstoredb-event-store';
import { ApiCertificate, ensureApiCertificate } from '../http/api-certificate';
import { PostgresEventStore } from '../event-store/postgres/postgres-event-store';
import { createHubApp } from './create-hub-app';

export interface RunningHub {
  config: HubConfig;
  url: string;
  close(): Promise<void>;
}

/** Starts every part of the hub in dependency order and returns one close() that undoes them in reverse. */
export async function startHub(env: NodeJS.ProcessEnv): Promise<RunningHub> {
  const config = loadHubConfig(env);
  const log = pino({ level: config.logLevel, base: { component: 'hub' } });
  mkdirSync(config.dataDir, { recursive: true, mode: 0o750 });
  const undo: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const step of undo.reverse()) await step().catch((e) => log.error({ err: e }, 'shutdown step failed'));
    undo.length = 0;
  };
  try {
    // before the database starts: a certificate that cannot be read or made stops the hub at once
    const apiCertificate: ApiCertificate | null = config.apiTls.enabled ? await ensureApiCertificate(config) : null;
    let connection: DbConnection;
    if (config.databaseUrl) {
      connection = connectionFromUrl(config.databaseUrl);
    } else {
      const embedded: EmbeddedDatabase = await startEmbeddedPostgres(config.dataDir, (level, message) => log[level]({ source: 'embedded-postgres' }, message));
      undo.push(() => embedded.stop());
      // nothing works without it: the hub stops as a crash would, and its restart starts the database again
      void embedded.died.then((why) => {
        process.stderr.write(`sendense hub: ${why}; stopping, for the restart to start it again\n`);
        process.exit(DATABASE_LOST_EXIT_CODE);
      });
      connection = embedded.connection;
      log.info({ dir: connection.host }, 'embedded PostgreSQL is running');
    }
    const dataSource: DataSource = createDataSource(connection, READ_MODEL_ENTITIES);
    await dataSource.initialize();
    undo.push(() => dataSource.destroy());
    await runMigrations(dataSource, connection);

    let store: EventStore;
    if (config.eventStoreUrl) {
      store = new EventStoreDbEventStore(config.eventStoreUrl);
    } else {
      const pool = new Pool(pgPoolConfig(connection, 20));
      undo.push(() => pool.end());
      store = new PostgresEventStore(pool, pgClientConfig(connection, 'sendense-listen'));
    }
    undo.push(() => store.close());

    const admin = ensureAdminToken(config.dataDir, config.adminToken);
    const app: INestApplication = await createHubApp({ config, connection, dataSource, store, adminTokenHash: hashToken(admin.token), apiCertificate });
    undo.push(() => app.close());
    // the query handlers that answer the check below are registered when the application initialises
    await app.init();
    if (!(await app.get(TokenVerifier).principalFor(admin.token))) {
      log.warn(
        { adminToken: admin.file ?? 'SENDENSE_ADMIN_TOKEN' },
        `the admin token was rotated through the API since ${admin.file ?? 'SENDENSE_ADMIN_TOKEN'} was set: it no longer works; use the token the rotation returned (written to admin.token on the hub that rotated it)`,
      );
    }
    await app.listen(config.apiPort, config.apiBind).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') throw new Error(`SENDENSE_API_PORT ${config.apiPort} on ${config.apiBind} is already in use by another process`);
      throw error;
    });
    const url = `${apiCertificate ? 'https' : 'http'}://${config.apiBind.includes(':') ? `[${config.apiBind}]` : config.apiBind}:${config.apiPort}`;
    log.info(
      { url, eventStore: store.kind, database: connection.origin, adminToken: admin.file ?? 'SENDENSE_ADMIN_TOKEN', ...(apiCertificate ? { tlsCertificate: apiCertificate.certFile, tlsFingerprint: apiCertificate.fingerprint } : {}) },
      `hub listening on ${url}${apiCertificate ? ` with TLS certificate ${apiCertificate.fingerprint}${apiCertificate.generated ? ` (made now: ${apiCertificate.certFile})` : ''}` : ''}; ${admin.file ? `admin token is in ${admin.file}` : 'admin token from SENDENSE_ADMIN_TOKEN'}`,
    );
    return { config, url, close };
  } catch (error) {
    await close();
    throw error;
  }
}
