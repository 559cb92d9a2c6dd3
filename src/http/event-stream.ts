import type { Response } from 'express';
import { EventStore } from '../event-store/event-store.port';

/** Live progress as server-sent events: a stream's events from its beginning, until one of `endTypes` or the client leaves. */
export async function streamEvents(store: EventStore, streamId: string, endTypes: string[], res: Response): Promise<void> {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
  const abort = new AbortController();
  res.on('close', () => abort.abort());
  const heartbeat = setInterval(() => res.write(': keepalive\n\n'), 15_000);
  try {
    for await (const e of store.subscribeToAll({ filter: { streamPrefixes: [streamId] }, signal: abort.signal })) {
      if (e.streamId !== streamId) continue;
      res.write(`id: ${e.position}\nevent: ${e.type}\ndata: ${JSON.stringify({ type: e.type, revision: e.revision.toString(), time: e.createdAt, data: e.data })}\n\n`);
      if (endTypes.includes(e.type)) break;
    }
  } finally {
    clearInterval(heartbeat);
    res.end();
  }
}
