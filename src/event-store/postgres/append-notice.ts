import type { EventFilter } from '../event-store.port';

/**
 * What a notification on the store's channel says was appended: the streams and the event types. Readers
 * use it only to skip a wake-up for appends their filter cannot match; `everything` (a payload that is not
 * a notice: a projection reset, a notice too long for NOTIFY, a hub of an older version) wakes every reader.
 */
export type AppendNotice = { streams: string[]; types: string[] } | 'everything';

/** Below PostgreSQL's 8000-byte limit on a NOTIFY payload. */
const MAX_PAYLOAD = 7900;

export function noticePayload(appends: readonly { streamId: string; events: readonly { type: string }[] }[]): string {
  const streams = [...new Set(appends.map((a) => a.streamId))];
  const types = [...new Set(appends.flatMap((a) => a.events.map((e) => e.type)))];
  const payload = JSON.stringify({ s: streams, t: types });
  return Buffer.byteLength(payload) <= MAX_PAYLOAD ? payload : '*';
}

export function parseNotice(payload: string | undefined): AppendNotice {
  if (!payload?.startsWith('{')) return 'everything';
  try {
    const { s, t } = JSON.parse(payload) as { s?: unknown; t?: unknown };
    const strings = (xs: unknown): xs is string[] => Array.isArray(xs) && xs.every((x) => typeof x === 'string');
    return strings(s) && strings(t) ? { streams: s, types: t } : 'everything';
  } catch {
    return 'everything';
  }
}

/** Whether a reader with this filter may find something new after this notice; when unsure, yes. */
export function mayMatch(notice: AppendNotice, filter: EventFilter | undefined): boolean {
  if (notice === 'everything') return true;
  const types = filter?.eventTypes?.length ? filter.eventTypes : null;
  const prefixes = filter?.streamPrefixes?.length ? filter.streamPrefixes : null;
  const typeMatches = !types || notice.types.some((t) => types.includes(t));
  const streamMatches = !prefixes || notice.streams.some((s) => prefixes.some((p) => s.startsWith(p)));
  return typeMatches && streamMatches;
}
