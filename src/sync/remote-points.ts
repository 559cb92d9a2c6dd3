import { leftOutProblem } from '../wire/backup-protocol';
import { identifierProblem, isSafeIdentifier } from '../wire/identifiers';
import type { SyncPointList } from './sync-protocol';

export type RemotePoint = SyncPointList['points'][number];

/**
 * How far ahead of this hub's clock a remote point's createdAt may be: two hubs' clocks disagree by a little, but a
 * point from the future would stand as the newest point here, and every later genuine point would be left out as older.
 */
export const CLOCK_SKEW_MS = 5 * 60_000;

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** An ISO 8601 instant with its zone, as every hub writes createdAt (toISOString). */
const INSTANT = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/;

/**
 * A remote's value as a log line or an event may carry it: a safe id as it is, anything else JSON-quoted (a NUL becomes
 * \u0000, which PostgreSQL's jsonb also takes) and cut to 80 characters.
 */
export function shownId(value: unknown): string {
  return isSafeIdentifier(value) ? value : quoted(value);
}

function quoted(value: unknown): string {
  if (typeof value !== 'string') return (JSON.stringify(value) ?? typeof value).slice(0, 80);
  const shown = JSON.stringify(value.length > 80 ? value.slice(0, 80) : value);
  return value.length > 80 ? `${shown}…(${value.length} characters)` : shown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Why a point the remote lists cannot be taken as it stands, or null. Everything the hub later builds a file name,
 * a stream name or an order from is checked here, at the boundary: ids (the validator every party shares), the disks,
 * createdAt (against this hub's clock). The chain's fit is judged apart, where the chain here is known.
 */
export function pointProblem(point: unknown, now: Date): string | null {
  if (!isObject(point)) return 'it is not an object';
  const id = identifierProblem('restorePointId', point.restorePointId) ?? identifierProblem('vmId', point.vmId);
  if (id) return id;
  if (point.parentId !== null && identifierProblem('parentId', point.parentId)) return identifierProblem('parentId', point.parentId);
  if (point.backupId !== null && point.backupId !== undefined && identifierProblem('backupId', point.backupId)) return identifierProblem('backupId', point.backupId);
  if (point.type !== 'full' && point.type !== 'incremental') return `type ${quoted(point.type)} is neither full nor incremental`;
  if (typeof point.createdAt !== 'string' || !INSTANT.test(point.createdAt) || Number.isNaN(Date.parse(point.createdAt))) return `createdAt ${quoted(point.createdAt)} is not an ISO 8601 instant`;
  const ahead = Date.parse(point.createdAt) - now.getTime();
  if (ahead > CLOCK_SKEW_MS) return `createdAt ${point.createdAt} is ${Math.round(ahead / 60_000)} minutes ahead of this hub's clock (${now.toISOString()}; ${CLOCK_SKEW_MS / 60_000} minutes of skew are allowed)`;
  if (!Array.isArray(point.disks) || point.disks.length === 0) return 'it lists no disks';
  const seen = new Set<string>();
  for (const disk of point.disks as unknown[]) {
    if (!isObject(disk)) return 'a disk is not an object';
    const problem = identifierProblem('diskId', disk.diskId);
    if (problem) return problem;
    const diskId = disk.diskId as string;
    if (seen.has(diskId)) return `disk ${diskId} is listed twice`;
    seen.add(diskId);
    if (!Number.isSafeInteger(disk.virtualSize) || (disk.virtualSize as number) <= 0) return `disk ${diskId} has virtual size ${quoted(disk.virtualSize)}, not a positive integer`;
    if (disk.digests !== null && disk.digests !== undefined && (!isObject(disk.digests) || typeof disk.digests.sha256 !== 'string' || !SHA256_HEX.test(disk.digests.sha256))) return `disk ${diskId} names its digests without a SHA-256`;
    if (disk.changeRef !== null && disk.changeRef !== undefined && (typeof disk.changeRef !== 'string' || disk.changeRef.length > 1024 || disk.changeRef.includes('\0'))) return `disk ${diskId} has an unusable changeRef`;
  }
  if (point.configuration !== null && point.configuration !== undefined && (!isObject(point.configuration) || typeof point.configuration.sha256 !== 'string' || !SHA256_HEX.test(point.configuration.sha256)))
    return 'its configuration is named without a SHA-256';
  // what is recorded as the remote said it: text PostgreSQL takes (no NUL) and of a sane length, or one bad point fails the whole run
  if (point.consistency !== null && point.consistency !== undefined && point.consistency !== 'application' && point.consistency !== 'crash') return `consistency ${quoted(point.consistency)} is neither application nor crash`;
  if (point.consistencyReason !== null && point.consistencyReason !== undefined && (typeof point.consistencyReason !== 'string' || point.consistencyReason.length > 1024 || point.consistencyReason.includes('\0'))) return 'its consistencyReason is not a line of text';
  if (point.freezeMs !== null && point.freezeMs !== undefined && (!Number.isSafeInteger(point.freezeMs) || (point.freezeMs as number) < 0)) return `freezeMs ${quoted(point.freezeMs)} is not a duration`;
  return point.disksLeftOut === undefined ? null : leftOutProblem('disksLeftOut', point.disksLeftOut);
}

/**
 * Why a well-formed point does not fit the chains (the one here and the remote's list), or null. An incremental
 * needs its parent: held here, or listed by the remote for the same VM and not refused in this run (a parent the run
 * does not copy makes the point a full here, as before). A parent that is nowhere would leave an image whose backing
 * file is missing.
 */
export function chainProblem(point: RemotePoint, facts: { heldHere: (restorePointId: string) => boolean; listed: ReadonlyMap<string, RemotePoint>; refused: ReadonlySet<string> }): string | null {
  if (point.type === 'full') return point.parentId === null ? null : `a full point names parent ${point.parentId}`;
  if (point.parentId === null) return 'an incremental point names no parent';
  if (point.parentId === point.restorePointId) return 'it names itself as its parent';
  if (facts.refused.has(point.parentId)) return `its parent ${point.parentId} was refused in this run`;
  if (facts.heldHere(point.parentId)) return null;
  const parent = facts.listed.get(point.parentId);
  if (!parent) return `its parent ${point.parentId} is neither held here nor listed by the remote hub`;
  if (parent.vmId !== point.vmId) return `its parent ${point.parentId} belongs to VM ${parent.vmId}, not ${point.vmId}`;
  return null;
}
