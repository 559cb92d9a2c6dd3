import { DataSource } from 'typeorm';
import { HubConfig } from '../config/hub-config';
import { DbConnection } from '../database/db-connection';
import { EventStore } from '../event-store/event-store.port';

/** What the hub process built before Nest starts: configuration and open connections. */
export interface HubRuntime {
  config: HubConfig;
  connection: DbConnection;
  dataSource: DataSource;
  store: EventStore;
  adminTokenHash: string;
}
