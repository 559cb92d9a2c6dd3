import { INestApplication } from '@nestjs/common';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { hashToken } from '../../src/auth/token-hash';
import { loadHubConfig } from '../../src/config/hub-config';
import { createHubApp } from '../../src/hub/create-hub-app';
import { createTestDatabase, TestDatabase } from './test-database';

export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface TestHub {
  app: INestApplication;
  dataDir: string;
  db: TestDatabase;
  http: () => ReturnType<typeof request>;
  admin: (req: request.Test) => request.Test;
  /** The API on a loopback port, for clients that need a real socket (fetch, SSE, the CLI); listens on first use. */
  url: () => Promise<string>;
  close(): Promise<void>;
}

/** The real hub application on a fresh real database, driven over HTTP by supertest. */
export async function startTestHub(env: NodeJS.ProcessEnv = {}): Promise<TestHub> {
  const db = await createTestDatabase();
  const hub = await hubOn(db, 'sendense-testhub-', env);
  return {
    ...hub,
    db,
    close: async () => {
      await hub.close();
      await db.drop();
    },
  };
}

/** A hub application with a data dir of its own on `db`, which it leaves as it is when closed. */
async function hubOn(db: TestDatabase, prefix: string, env: NodeJS.ProcessEnv): Promise<Omit<TestHub, 'db'>> {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  const config = loadHubConfig({ SENDENSE_LOG_LEVEL: 'warn', SENDENSE_DATA_DIR: dataDir, SENDENSE_SSH_PORT: '0', SENDENSE_SSH_BIND: '127.0.0.1', SENDENSE_DELETE_GRACE_DAYS: '0', ...env });
  const app = await createHubApp({ config, connection: db.connection, dataSource: db.dataSource, store: db.store, adminTokenHash: hashToken(TEST_ADMIN_TOKEN) });
  await app.init();
  return {
    app,
    dataDir,
    http: () => request(app.getHttpServer()),
    admin: (req) => req.set('Authorization', `Bearer ${TEST_ADMIN_TOKEN}`),
    url: async () => {
      const server = app.getHttpServer() as Server;
      if (!server.listening) await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    },
    close: async () => {
      await app.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function eventCount(db: TestDatabase): Promise<number> {
  const [row] = await db.dataSource.query(`SELECT count(*)::int AS n FROM es_events`);
  return row.n;
}

/**
 * A second hub process's application on the same database and event store as `hub` (its own data dir): what one
 * hub records, the other must act on, as hubs sharing one database do.
 */
export function startPeerHub(hub: TestHub, env: NodeJS.ProcessEnv = {}): Promise<Omit<TestHub, 'db'>> {
  return hubOn(hub.db, 'sendense-testhub-peer-', env);
}
