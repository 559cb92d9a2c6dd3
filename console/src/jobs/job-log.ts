import { sentence, type StoryEvent } from '../audit/sentences';

/**
 * A job's story as sentences, from the events the audit API gives for its correlation id. Events that are the
 * hub's own bookkeeping (ports, qemu-nbd, progress ticks) say nothing here; they stay in the technical events.
 */
export function jobLog(events: StoryEvent[]): { eventId: string; time: string; text: string; tone?: 'bad' }[] {
  return events.flatMap((e) => {
    const said = sentence(e);
    return said ? [{ eventId: e.eventId, time: e.time, ...said }] : [];
  });
}
