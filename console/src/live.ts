import { useEffect, useRef } from 'preact/hooks';
import { toLogin } from './router';
import { session } from './session';

export interface LiveEvent {
  position: string;
  streamId: string;
  type: string;
  revision: string;
  time: string;
  correlationId: string;
  data: Record<string, unknown>;
}

type Listener = (event: LiveEvent) => void;
const listeners = new Set<Listener>();
/** The events of this tab's stream, newest last: a listing answered `asOf` a position is brought up to date from here. */
const recent: LiveEvent[] = [];
const RECENT = 5000;
let lastId: string | null = null;
let running = false;

/** What the page shows of the stream (and tests read): its state, how often it resumed, events it dropped as already seen. */
function mark(state: 'connecting' | 'open' | 'retrying', resumed = 0): void {
  document.body.dataset.live = state;
  if (resumed) document.body.dataset.liveResumes = String(Number(document.body.dataset.liveResumes ?? 0) + resumed);
}

/**
 * The tab's one stream of job and restore events, read with fetch (the session cookie goes with it) rather than
 * EventSource, so a resume can name the last event id it saw whatever the browser does on its own. After a drop it reconnects with the last event id it saw, so nothing is missed and nothing
 * is applied twice (ids are event positions, in order).
 */
async function run(): Promise<void> {
  let attempt = 0;
  while (listeners.size && session.loggedIn()) {
    mark(attempt ? 'retrying' : 'connecting');
    try {
      const res = await fetch('/api/v1/live', { credentials: 'same-origin', headers: lastId ? { 'Last-Event-ID': lastId } : {} });
      if (res.status === 401) return (session.forget(), toLogin());
      if (!res.ok || !res.body) throw new Error(`live stream: ${res.status}`);
      if (attempt) mark('open', 1);
      else mark('open');
      attempt = 0;
      await read(res.body);
    } catch {
      // a dropped connection: resume below
    }
    attempt++;
    await new Promise((r) => setTimeout(r, Math.min(5000, 250 * attempt)));
  }
}

async function read(body: ReadableStream<Uint8Array>): Promise<void> {
  const reader = body.pipeThrough(new TextDecoderStream() as unknown as ReadableWritablePair<string, Uint8Array>).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      dispatch(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
  }
}

function dispatch(message: string): void {
  let id: string | null = null;
  let type = 'message';
  let data = '';
  for (const line of message.split('\n')) {
    if (line.startsWith('id: ')) id = line.slice(4);
    else if (line.startsWith('event: ')) type = line.slice(7);
    else if (line.startsWith('data: ')) data += line.slice(6);
  }
  if (id === null && type === 'ready') id = '';
  if (id === null) return;
  if (lastId !== null && id <= lastId) return;
  lastId = id;
  // `ready` opens a new stream: a page lists what it shows again, as of where the stream starts
  const event = { ...((type === 'ready' ? { type } : JSON.parse(data)) as Omit<LiveEvent, 'position'>), position: id };
  if (type !== 'ready') {
    recent.push(event);
    if (recent.length > RECENT) recent.splice(0, recent.length - RECENT);
  }
  for (const l of listeners) l(event);
}

/** Calls `listener` with every job and restore event appended while the component is mounted, and with `ready` when a new stream starts. */
export function useLive(listener: Listener): void {
  const latest = useRef(listener);
  latest.current = listener;
  useEffect(() => {
    const forward: Listener = (e) => latest.current(e);
    listeners.add(forward);
    if (!running) {
      running = true;
      void run().finally(() => (running = false));
    }
    return () => void listeners.delete(forward);
  }, []);
}

/** Events this tab has seen after `asOf` (a listing's position; null: all it has), for bringing that listing up to date. */
export function eventsAfter(asOf: string | null): LiveEvent[] {
  return asOf === null ? [...recent] : recent.filter((e) => e.position > asOf);
}
