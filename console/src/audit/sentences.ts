import { bytes, duration } from '../format';

export interface StoryEvent {
  eventId: string;
  streamId: string;
  type: string;
  position: string;
  time: string;
  data: Record<string, unknown>;
  metadata: { actor: string; correlationId: string; causationId?: string };
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
/** Who acted, in an operator's words: the hub itself (a schedule, a queue, a workflow), an agent (its token is `agent-<name>`), or the token's owner. */
export const who = (actor: string) => (actor === 'system' ? 'the hub' : actor.startsWith('agent-') ? `agent ${actor.slice('agent-'.length)}` : `operator ${actor}`);

/**
 * An event as a sentence an operator reads (`disk1: 16 MiB in 12 s, 1.3 MiB/s`), or null for the hub's own
 * bookkeeping (ports, qemu-nbd, progress ticks, claims), which a job's story leaves out and the audit page says in
 * its generic form.
 */
export function sentence(e: StoryEvent): { text: string; tone?: 'bad' } | null {
  const d = e.data as Record<string, any>;
  const by = who(e.metadata.actor);
  switch (e.type) {
    case 'BackupRequested':
      return { text: `${by} asked for a${d.requestedType === 'auto' ? '' : ` ${d.requestedType}`} backup of ${d.vmId}` };
    case 'BackupTypeDecided':
      return { text: `${d.type}: ${d.reason}` };
    case 'SnapshotCreated':
      return { text: `snapshot of ${plural((d.diskIds ?? []).length, 'disk')}${typeof d.freezeMs === 'number' ? `, guest frozen ${d.freezeMs} ms` : ''}${d.consistency ? ` (${d.consistency}${d.consistencyReason ? `: ${d.consistencyReason}` : ''})` : ''}` };
    case 'DiskTransferCompleted': {
      if (!d.bytesPlanned) return { text: `${d.diskId}: nothing changed, nothing to copy` };
      const seconds = Math.max(d.durationMs, 1) / 1000;
      const moved = [`${bytes(d.bytesWritten)} written`, d.bytesZeroed ? `${bytes(d.bytesZeroed)} zeroed` : '', d.bytesKnown ? `${bytes(d.bytesKnown)} already in the repository` : ''].filter(Boolean).join(', ');
      return { text: `${d.diskId}: ${bytes(d.bytesPlanned)} in ${duration(seconds)}, ${bytes(d.bytesPlanned / seconds)}/s (${moved})` };
    }
    case 'SnapshotRemoved':
      return { text: 'snapshot removed' };
    case 'BackupCancelRequested':
      return { text: `${by} asked to cancel` };
    case 'BackupCompleted':
      return { text: `completed: restore point ${d.restorePointId}, ${bytes(d.bytesWritten)} written` };
    case 'BackupFailed':
      return { text: `failed in ${d.phase}: ${d.reason}`, tone: 'bad' };
    case 'RestorePointAdded':
      return { text: `restore point ${d.restorePointId} (${d.type}) of ${d.vmId} added to its chain` };
    case 'RestorePointVerified':
      return d.ok ? { text: `restore point ${d.restorePointId} verified: every block as backed up` } : { text: `restore point ${d.restorePointId} failed its verify: ${(d.problems ?? []).join('; ')}`, tone: 'bad' };
    case 'RestorePointCorrupted':
      return { text: `restore point ${d.restorePointId}: ${d.diskId} has ${bytes(d.length)} damaged at offset ${d.offset}`, tone: 'bad' };
    case 'RestorePointRecycled':
      return { text: `restore point ${d.restorePointId} moved to the recycle bin (${d.reason}), purged after ${d.purgeAfter}` };
    case 'RestorePointUndeleted':
      return { text: `${who(d.by ?? e.metadata.actor)} took restore point ${d.restorePointId} out of the recycle bin` };
    case 'RestorePointDeleted':
      return { text: `restore point ${d.restorePointId} deleted` };
    case 'RestoreMountRequested':
      return { text: `${by} mounted ${d.diskId} of restore point ${d.restorePointId} to browse its files` };
    case 'RestoreMountReady':
      return { text: 'the mount is ready' };
    case 'RestoreMountFailed':
      return { text: `the mount failed: ${d.reason}`, tone: 'bad' };
    case 'RestoreFileDownloaded':
      return { text: `${by} downloaded ${d.path} (${bytes(d.bytes)})` };
    case 'RestoreMountReleased':
      return { text: `the mount was released (${d.reason})` };
    case 'DiskImageDownloaded':
      return { text: `${by} downloaded ${d.diskId} of restore point ${d.restorePointId} as ${d.format}` };
    case 'RestoreRequested':
      return { text: `${by} asked to restore ${d.vmId} from ${d.restorePointId}${d.target?.name ? ` as ${d.target.name}` : ''}` };
    case 'RestoreCompleted':
      return { text: `restore completed: domain ${d.domain?.name}${d.domain?.started ? ', started' : ''}` };
    case 'RestoreFailed':
      return { text: `restore failed in ${d.phase}: ${d.reason}`, tone: 'bad' };
    case 'RecoveryDrillPassed':
      return { text: `recovery drill of ${d.vmId} passed: its guest answered ${duration(d.bootMs / 1000)} after the domain was created` };
    case 'RecoveryDrillFailed':
      return { text: `recovery drill of ${d.vmId} failed: ${d.reason}`, tone: 'bad' };
    case 'PolicyCreated':
      return { text: `${by} created policy ${d.name}` };
    case 'PolicyUpdated':
      return { text: `${by} changed policy ${d.name}` };
    case 'PolicyDeleted':
      return { text: `${by} deleted a policy` };
    case 'SlotSkipped':
      return { text: `a scheduled backup${d.vmId ? ` of ${d.vmId}` : ''} was skipped: ${d.reason}` };
    case 'RepositoryRegistered':
      return { text: `${by} added repository ${d.name}` };
    case 'RepositoryLowSpace':
      return { text: `a repository is low on space: ${bytes(d.freeBytes)} free of ${bytes(d.totalBytes)}`, tone: 'bad' };
    case 'AgentRegistered':
      return { text: `${by} registered agent ${d.name}` };
    case 'AgentConnected':
      return { text: `an agent connected from ${d.remoteAddress}` };
    case 'AgentDisconnected':
      return { text: `an agent disconnected: ${d.reason}` };
    case 'ApiTokenIssued':
      return { text: `${by} issued token ${d.name} (${d.role})` };
    case 'ApiTokenRevoked':
      return { text: `${by} revoked token ${d.name}` };
    case 'SyncRunCompleted':
      return { text: `sync run completed: ${plural((d.synced ?? []).length, 'point')} copied` };
    case 'SyncRunFailed':
      return { text: `sync run failed: ${d.reason}`, tone: 'bad' };
    default:
      return null;
  }
}

/** An event nothing above says in words: still a sentence, naming what was recorded and where. */
export const sentenceOrPlain = (e: StoryEvent) => sentence(e) ?? { text: `${who(e.metadata.actor)} recorded ${e.type} on ${e.streamId}` };
