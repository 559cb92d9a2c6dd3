import type { DamagedRange } from '../restore-points/chain.events';
import type { Integrity, PointIntegrity } from '../restore-points/chain.aggregate';

/** A restore point's integrity as a mount of one of its disks shows it, and as its downloads carry it. */
export interface MountIntegrity {
  /** The point's: a point with any damaged block or structural problem is corrupt, whichever disk is mounted. */
  integrity: Integrity;
  /** When a verify last read the point back; null when none did. */
  verifiedAt: string | null;
  /** The damaged blocks the mounted disk reads: in the point's own file or in one it reads through. */
  damaged: DamagedRange[];
  /** What else makes the point corrupt: structural problems, and damage on its other disks. */
  integrityProblems: string[];
}

export const INTEGRITY_HEADER = 'X-Sendense-Integrity';
export const VERIFIED_AT_HEADER = 'X-Sendense-Verified-At';
export const DAMAGED_RANGES_HEADER = 'X-Sendense-Damaged-Ranges';
export const DAMAGED_IN_HEADER = 'X-Sendense-Damaged-In';

const NEVER_VERIFIED: PointIntegrity = { status: 'unverified', verifiedAt: null, damaged: [], problems: [] };

export function mountIntegrity(point: PointIntegrity | null, diskId: string): MountIntegrity {
  const { status, verifiedAt, damaged, problems } = point ?? NEVER_VERIFIED;
  const elsewhere = new Map<string, DamagedRange[]>();
  for (const range of damaged) if (range.diskId !== diskId) elsewhere.set(range.diskId, [...(elsewhere.get(range.diskId) ?? []), range]);
  const otherDisks = [...elsewhere].map(([disk, ranges]) => `disk ${disk} of the restore point has ${ranges.length} damaged block${ranges.length === 1 ? '' : 's'} (in ${pointsHolding(ranges).join(', ')})`);
  return { integrity: status, verifiedAt, damaged: damaged.filter((r) => r.diskId === diskId), integrityProblems: [...problems, ...otherDisks] };
}

/** The points whose files hold the damage, in the order it was found. */
export function pointsHolding(ranges: DamagedRange[]): string[] {
  return [...new Set(ranges.map((r) => r.inPointId))];
}

/**
 * What every download from a mount carries: the point's state, when it was last verified, and
 * for a corrupt point how many damaged blocks the mounted disk reads and which points' files hold them.
 */
export function integrityHeaders(m: MountIntegrity): Record<string, string> {
  const headers: Record<string, string> = { [INTEGRITY_HEADER]: m.integrity };
  if (m.verifiedAt) headers[VERIFIED_AT_HEADER] = m.verifiedAt;
  if (m.integrity === 'corrupt') {
    headers[DAMAGED_RANGES_HEADER] = String(m.damaged.length);
    if (m.damaged.length) headers[DAMAGED_IN_HEADER] = pointsHolding(m.damaged).join(',');
  }
  return headers;
}
