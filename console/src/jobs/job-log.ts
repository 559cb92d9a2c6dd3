import { bytes, duration } from '../format';

export interface StoryEvent {
  eventId: string;
  streamId: string;
  type: string;
  position: string;
  time: string;
  data: Record<string, unknown>;
  metadata: { actor: string; correlationId: string };
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
/** Who asked, in an operator's words: the hub itself (a schedule, a queue), an agent, or the token's owner. */
const who = (actor: string) => (actor === 'system' ? 'the hub' : actor.startsWith('agent') ? actor : `operator ${actor}`);

/**
 * A job's story as sentences an operator reads (`disk1: 16 MiB in 12 s, 1.3 MiB/s`), from the events the audit API
 * gives for its correlation id. Events that are the hub's own bookkeeping (ports, qemu-nbd, progress ticks) say
 * nothing here; they stay in the technical events.
 */
export function jobLog(events: StoryEvent[]): { eventId: string; time: string; text: string; tone?: 'bad' }[] {
  const lines: { eventId: string; time: string; text: string; tone?: 'bad' }[] = [];
  for (const e of events) {
    const d = e.data as Record<string, any>;
    const say = (text: string, tone?: 'bad') => lines.push({ eventId: e.eventId, time: e.time, text, tone });
    switch (e.type) {
      case 'BackupRequested':
        say(`${who(e.metadata.actor)} asked for a${d.requestedType === 'auto' ? '' : ` ${d.requestedType}`} backup`);
        break;
      case 'BackupTypeDecided':
        say(`${d.type}: ${d.reason}`);
        break;
      case 'SnapshotCreated':
        say(`snapshot of ${plural((d.diskIds ?? []).length, 'disk')}${typeof d.freezeMs === 'number' ? `, guest frozen ${d.freezeMs} ms` : ''}${d.consistency ? ` (${d.consistency}${d.consistencyReason ? `: ${d.consistencyReason}` : ''})` : ''}`);
        break;
      case 'DiskTransferCompleted': {
        if (!d.bytesPlanned) {
          say(`${d.diskId}: nothing changed, nothing to copy`);
          break;
        }
        const seconds = Math.max(d.durationMs, 1) / 1000;
        const moved = [`${bytes(d.bytesWritten)} written`, d.bytesZeroed ? `${bytes(d.bytesZeroed)} zeroed` : '', d.bytesKnown ? `${bytes(d.bytesKnown)} already in the repository` : ''].filter(Boolean).join(', ');
        say(`${d.diskId}: ${bytes(d.bytesPlanned)} in ${duration(seconds)}, ${bytes(d.bytesPlanned / seconds)}/s (${moved})`);
        break;
      }
      case 'SnapshotRemoved':
        say('snapshot removed');
        break;
      case 'BackupCancelRequested':
        say(`${who(e.metadata.actor)} asked to cancel`);
        break;
      case 'BackupCompleted':
        say(`completed: restore point ${d.restorePointId}, ${bytes(d.bytesWritten)} written`);
        break;
      case 'BackupFailed':
        say(`failed in ${d.phase}: ${d.reason}`, 'bad');
        break;
    }
  }
  return lines;
}
