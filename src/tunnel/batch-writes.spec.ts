import { once } from 'node:events';
import { createServer, connect, Socket } from 'node:net';
import { batchWrites } from './batch-writes';

describe('batchWrites', () => {
  it('sends the writes of one tick in one go, in order, and the next tick\'s writes too', async () => {
    const received: Buffer[] = [];
    const server = createServer((s) => s.on('data', (d: Buffer) => received.push(d)));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const socket = batchWrites(connect((server.address() as { port: number }).port, '127.0.0.1'));
    await once(socket, 'connect');
    const written: string[] = [];
    const raw = Socket.prototype._writev!;
    const spy = jest.spyOn(socket as Socket & { _writev: typeof raw }, '_writev').mockImplementation(function (this: Socket, chunks, cb) {
      written.push(chunks.map((c) => c.chunk.toString()).join('|'));
      return raw.call(this, chunks, cb);
    });
    for (const part of ['a', 'b', 'c']) socket.write(part);
    await new Promise((r) => setImmediate(r));
    for (const part of ['d', 'e']) socket.write(part);
    await new Promise((r) => setTimeout(r, 50));
    expect(written).toEqual(['a|b|c', 'd|e']);
    expect(Buffer.concat(received).toString()).toBe('abcde');
    spy.mockRestore();
    socket.destroy();
    server.close();
  });
});
