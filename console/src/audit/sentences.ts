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

type Said = { text: string; tone?: 'bad' };

/**
 * An event as a sentence an operator reads (`disk1: 16 MiB in 12 s, 1.3 MiB/s`), by its type. Types not here are the
 * hub's own bookkeeping (ports, qemu-nbd, progress ticks, claims), which a job's story leaves out and the audit page
 * says in its generic form.
 */
const SAID: Record<string, (d: Record<string, any>, by: string, e: StoryEvent) => Said> = {
  BackupRequested: (d, by) => ({ text: `${by} asked for a${d.requestedType === 'auto' ? '' : ` ${d.requestedType}`} backup of ${d.vmId}` }),
  BackupTypeDecided: (d) => ({ text: `${d.type}: ${d.reason}` }),
  SnapshotCreated: (d) => ({ text: `snapshot of ${plural((d.diskIds ?? []).length, 'disk')}${typeof d.freezeMs === 'number' ? `, guest frozen ${d.freezeMs} ms` : ''}${d.consistency ? ` (${d.consistency}${d.consistencyReason ? `: ${d.consistencyReason}` : ''})` : ''}` }),
  DiskTransferCompleted: (d) => {
    if (!d.bytesPlanned) return { text: `${d.diskId}: nothing changed, nothing to copy` };
    const seconds = Math.max(d.durationMs, 1) / 1000;
    const moved = [`${bytes(d.bytesWritten)} written`, d.bytesZeroed ? `${bytes(d.bytesZeroed)} zeroed` : '', d.bytesKnown ? `${bytes(d.bytesKnown)} already in the repository` : ''].filter(Boolean).join(', ');
    return { text: `${d.diskId}: ${bytes(d.bytesPlanned)} in ${duration(seconds)}, ${bytes(d.bytesPlanned / seconds)}/s (${moved})` };
  },
  SnapshotRemoved: () => ({ text: 'snapshot removed' }),
  BackupCancelRequested: (d, by) => ({ text: `${by} asked to cancel` }),
  BackupCompleted: (d) => ({ text: `completed: restore point ${d.restorePointId}, ${bytes(d.bytesWritten)} written` }),
  BackupFailed: (d) => ({ text: `failed in ${d.phase}: ${d.reason}`, tone: 'bad' }),
  RestorePointAdded: (d) => ({ text: `restore point ${d.restorePointId} (${d.type}) of ${d.vmId} added to its chain` }),
  RestorePointVerified: (d) => (d.ok ? { text: `restore point ${d.restorePointId} verified: every block as backed up` } : { text: `restore point ${d.restorePointId} failed its verify: ${(d.problems ?? []).join('; ')}`, tone: 'bad' }),
  RestorePointCorrupted: (d) => ({ text: `restore point ${d.restorePointId}: ${d.diskId} has ${bytes(d.length)} damaged at offset ${d.offset}`, tone: 'bad' }),
  RestorePointRecycled: (d) => ({ text: `restore point ${d.restorePointId} moved to the recycle bin (${d.reason}), purged after ${d.purgeAfter}` }),
  RestorePointUndeleted: (d, by, e) => ({ text: `${who(d.by ?? e.metadata.actor)} took restore point ${d.restorePointId} out of the recycle bin` }),
  RestorePointDeleted: (d) => ({ text: `restore point ${d.restorePointId} deleted` }),
  RestorePointDeleteAdopted: (d) => ({ text: `the hub took over the delete of restore point ${d.restorePointId} left by hub process ${d.from ?? '(unnamed)'}, which is gone` }),
  RestoreMountRequested: (d, by) => ({ text: `${by} mounted ${d.diskId} of restore point ${d.restorePointId} to browse its files` }),
  RestoreMountReady: () => ({ text: 'the mount is ready' }),
  RestoreMountFailed: (d) => ({ text: `the mount failed: ${d.reason}`, tone: 'bad' }),
  RestoreFileDownloaded: (d, by) => ({ text: `${by} downloaded ${d.path} (${bytes(d.bytes)})` }),
  RestoreMountReleased: (d) => ({ text: `the mount was released (${d.reason})` }),
  DiskImageDownloaded: (d, by) => ({ text: `${by} downloaded ${d.diskId} of restore point ${d.restorePointId} as ${d.format}` }),
  RestoreRequested: (d, by) => ({ text: `${by} asked to restore ${d.vmId} from ${d.restorePointId}${d.target?.name ? ` as ${d.target.name}` : ''}` }),
  RestoreCompleted: (d) => ({ text: `restore completed: domain ${d.domain?.name}${d.domain?.started ? ', started' : ''}` }),
  RestoreFailed: (d) => ({ text: `restore failed in ${d.phase}: ${d.reason}`, tone: 'bad' }),
  RecoveryDrillPassed: (d) => ({ text: `recovery drill of ${d.vmId} passed: its guest answered ${duration(d.bootMs / 1000)} after the domain was created` }),
  RecoveryDrillFailed: (d) => ({ text: `recovery drill of ${d.vmId} failed: ${d.reason}`, tone: 'bad' }),
  PolicyCreated: (d, by) => ({ text: `${by} created policy ${d.name}` }),
  PolicyUpdated: (d, by) => ({ text: `${by} changed policy ${d.name}` }),
  PolicyDeleted: (d, by) => ({ text: `${by} deleted a policy` }),
  SlotSkipped: (d) => ({ text: `a scheduled backup${d.vmId ? ` of ${d.vmId}` : ''} was skipped: ${d.reason}` }),
  RepositoryRegistered: (d, by) => ({ text: `${by} added repository ${d.name}` }),
  RepositoryLowSpace: (d) => ({ text: `a repository is low on space: ${bytes(d.freeBytes)} free of ${bytes(d.totalBytes)}`, tone: 'bad' }),
  AgentRegistered: (d, by) => ({ text: `${by} registered agent ${d.name}` }),
  AgentConnected: (d) => ({ text: `an agent connected from ${d.remoteAddress}` }),
  AgentDisconnected: (d) => ({ text: `an agent disconnected: ${d.reason}` }),
  ApiTokenIssued: (d, by) => ({ text: `${by} issued token ${d.name} (${d.role})` }),
  ApiTokenRevoked: (d, by) => ({ text: `${by} revoked token ${d.name}` }),
  RemoteRegistered: (d, by) => ({ text: `${by} registered remote hub ${d.name} at ${d.url}, its host key ${d.fingerprint}` }),
  RemoteTokenReplaced: (d, by) => ({ text: `${by} replaced the sync token of remote ${d.remoteId}` }),
  SyncJobCreated: (d, by) => ({ text: `${by} created a sync job from remote ${d.remoteId} for ${d.vms ? plural(d.vms.length, 'VM') : 'every VM'}${d.schedule ? `, on schedule ${d.schedule}` : ''}` }),
  SyncRunStarted: (d, by) => ({ text: d.trigger === 'schedule' ? 'a scheduled sync run started' : `${by} started a sync run` }),
  SyncPointRefused: (d) => ({ text: `restore point ${d.restorePointId} of ${d.vmId} listed by the remote hub was not taken: ${d.reason}`, tone: 'bad' }),
  SyncRunAdopted: (d) => ({ text: `the hub took over a sync run left by hub process ${d.from}, which is gone` }),
  SyncRunCompleted: (d) => ({ text: `sync run completed: ${plural((d.synced ?? []).length, 'point')} copied` }),
  SyncRunFailed: (d) => ({ text: `sync run failed: ${d.reason}`, tone: 'bad' }),
};

/** The event types said in words: the ones an operator most often looks for (the audit page offers them). */
export const SAID_TYPES = Object.keys(SAID);

export function sentence(e: StoryEvent): Said | null {
  // own keys only: an event type such as `toString` is not a sentence
  return Object.hasOwn(SAID, e.type) ? SAID[e.type](e.data, who(e.metadata.actor), e) : null;
}

/** An event nothing above says in words: still a sentence, naming what was recorded and where. */
export const sentenceOrPlain = (e: StoryEvent) => sentence(e) ?? { text: `${who(e.metadata.actor)} recorded ${e.type} on ${e.streamId}` };
