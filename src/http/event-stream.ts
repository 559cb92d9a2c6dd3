import type { Response } from 'express';
import { EventFilter, EventStore, RecordedEvent } from '../event-store/event-store.port';

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

/**
 * Every event of the streams the filter names after `after`, as server-sent events whose ids are event positions,
 * until the client leaves: a client that reconnects with the last id it saw (Last-Event-ID) misses none and gets
 * none twice.
 */
export async function streamLive(store: EventStore, filter: EventFilter, after: string | null, res: Response, visible: (event: RecordedEvent) => Promise<boolean>): Promise<void> {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  const abort = new AbortController();
  res.on('close', () => abort.abort());
  // The first message says where the stream starts, so a reconnect before any event resumes exactly there.
  res.write(`${after ? `id: ${after}\n` : ''}event: ready\ndata: {}\n\n`);
  const heartbeat = setInterval(() => res.write(': keepalive\n\n'), 15_000);
  try {
    for await (const e of store.subscribeToAll({ after, filter, signal: abort.signal })) {
      if (!(await visible(e))) continue;
      const body = { streamId: e.streamId, type: e.type, revision: e.revision.toString(), time: e.createdAt, correlationId: e.metadata.correlationId, data: e.data };
      res.write(`id: ${e.position}\nevent: ${e.type}\ndata: ${JSON.stringify(body)}\n\n`);
    }
  } catch (error) {
    // the headers are sent: say why the stream ends, and the client resumes after the last id it saw
    if (!abort.signal.aborted) res.write(`event: error\ndata: ${JSON.stringify({ message: error instanceof Error ? error.message : String(error) })}\n\n`);
  } finally {
    clearInterval(heartbeat);
    res.end();
  }
}
