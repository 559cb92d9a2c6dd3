import { DomainEvent } from '../eventing/aggregate';

export const RESTORE_POINT_ID_CLAIMED = 'RestorePointIdClaimed';

/**
 * The one repository and VM a restore point id names on this hub, claimed by the rescan that records it there (or
 * taken over from a holder whose chain no longer has the point: deleted, or never recorded).
 */
export type RestorePointIdClaimed = DomainEvent<typeof RESTORE_POINT_ID_CLAIMED, { restorePointId: string; repositoryId: string; vmId: string; claimedAt: string }>;

export const POINT_ID_STREAM_PREFIX = 'restore-point-id-';
/**
 * One stream per restore point id: its expected revision lets one recording of an id found in a repository's files
 * win where two rescans (of a repository and of its copy) ran at once, each finding the id in no read model yet.
 */
export const pointIdStream = (restorePointId: string) => `${POINT_ID_STREAM_PREFIX}${restorePointId}`;
