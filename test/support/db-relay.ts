import { createConnection, createServer, Server, Socket } from 'node:net';
import { join } from 'node:path';
import type { DbConnection } from '../../src/database/db-connection';

/** The database reached through a TCP relay the test can cut, as a network between a hub and its database is cut. */
export async function relayTo(db: DbConnection): Promise<{ connection: DbConnection; cut: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => (sockets.add(socket), socket.on('close', () => sockets.delete(socket)), socket);
  const server: Server = createServer((client) => {
    track(client);
    const upstream = track(db.host.startsWith('/') ? createConnection(join(db.host, `.s.PGSQL.${db.port}`)) : createConnection(db.port, db.host));
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    connection: { ...db, host: '127.0.0.1', port },
    cut: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
