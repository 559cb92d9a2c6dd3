import { DataSource } from 'typeorm';
import { HubConfig } from '../config/hub-config';
import { DbConnection } from '../database/db-connection';
import { EventStore } from '../event-store/event-store.port';
import type { ApiCertificate } from '../http/api-certificate';

/** What the hub process built before Nest starts: configuration and open connections. */
export interface HubRuntime {
  config: HubConfig;
  connection: DbConnection;
  dataSource: DataSource;
  store: EventStore;
  adminTokenHash: string;
  /** HTTPS on the API listener; absent or null: plain HTTP (loopback only, hub-config.ts sees to that). */
  apiCertificate?: ApiCertificate | null;
}
