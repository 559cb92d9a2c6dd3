import { nextSlot, parseCron } from '../calendar';
import type { DiskLeftOut } from '../../wire/backup-protocol';
import { PolicyRecord, selects, VmIdentity } from '../retention/selection';

export type RpoStatus = 'protected' | 'at-risk' | 'unprotected';
/**
 * What the morning check sorts a VM into: `unprotected` split by what the operator has to do about it, a VM with
 * no point (back it up) apart from one with points but no enabled policy (give it a schedule).
 */
export type ProtectionState = 'protected' | 'at-risk' | 'no-policy' | 'never-backed-up';

/** A VM's failed jobs since its last completed one (all of them before its first). */
export interface FailureStreak {
  vmId: string;
  failuresInRow: number;
}

export interface NewestPoint {
  vmId: string;
  restorePointId: string;
  repositoryId: string;
  createdAt: Date;
}

/** What the report is made from: the protection read model at one moment. */
export interface ProtectionFacts {
  policies: PolicyRecord[];
  vms: VmIdentity[];
  /** The newest restore point of each VM (any repository). */
  newest: NewestPoint[];
  /** Every VM with a finished job. */
  streaks: FailureStreak[];
  /** Each VM's newest recovery drill and newest passed one. */
  drills: DrillFacts[];
  /** How many of each VM's points wait in the recycle bin (VMs with none are left out). */
  recycled: { vmId: string; points: number }[];
  /** The disks of each VM its agent reports it cannot read (VMs with none are left out). */
  leftOut?: { vmId: string; disks: DiskLeftOut[] }[];
}

export interface DrillFacts {
  vmId: string;
  last: { at: Date; passed: boolean; reason: string | null; restorePointId: string };
  passed: { at: Date; bootMs: number; restorePointId: string } | null;
}

export interface VmProtection {
  vmId: string;
  name: string | null;
  policies: { policyId: string; name: string; rpoHours: number; enabled: boolean }[];
  lastRestorePoint: { restorePointId: string; repositoryId: string; createdAt: string; ageHours: number } | null;
  /** The tightest RPO of its enabled policies; null without one. */
  rpoHours: number | null;
  status: RpoStatus;
  state: ProtectionState;
  /** How long past its RPO the newest point is (at-risk only). */
  overdueHours: number | null;
  /** Failed jobs since the last completed one. */
  failuresInRow: number;
  /** The earliest next slot of its enabled policies, after `now`. */
  nextSlot: string | null;
  /**
   * Recovery drills: when the newest that passed did, and its measured time from the domain's creation to a
   * guest answering (the recovery time an operator can promise); and the newest drill's verdict.
   */
  drill: { lastPassedAt: string | null; bootMs: number | null; restorePointId: string | null; lastAt: string; lastPassed: boolean; lastReason: string | null } | null;
  /** Its points in the recycle bin: deleted, not yet purged, and undeletable by an admin (a delete an operator did not mean shows here). */
  recycledPoints: number;
  /** Disks holding data its agent cannot read, so that no point holds them: whatever `state` says of the RPO, these are not protected. */
  disksLeftOut: DiskLeftOut[];
}

/**
 * Per VM: `unprotected` when no enabled policy selects it or it has no restore point; `at-risk` when
 * its newest point is older than its tightest RPO; `protected` otherwise. `state` says the same with
 * `unprotected` split into `never-backed-up` (no point, whatever its policies) and `no-policy`. Pure: the same facts and
 * `now` give the same report, which is what lets `?at=` answer as the report read then.
 */
export function buildProtectionReport(facts: ProtectionFacts, now: Date): VmProtection[] {
  const ids = new Set([...facts.vms.map((v) => v.vmId), ...facts.newest.map((p) => p.vmId), ...facts.streaks.map((o) => o.vmId), ...facts.recycled.map((r) => r.vmId)]);
  const live = facts.policies.filter((p) => p.deletedAt === null);
  // Each fact looked up by VM, and each policy's next slot worked out once: a fleet's VMs share a few policies,
  // and a slot is a walk over the calendar in the policy's time zone.
  const vms = new Map(facts.vms.map((v) => [v.vmId, v]));
  const newestOf = new Map(facts.newest.map((p) => [p.vmId, p]));
  const drills = new Map(facts.drills.map((d) => [d.vmId, d]));
  const streaks = new Map(facts.streaks.map((s) => [s.vmId, s.failuresInRow]));
  const recycled = new Map(facts.recycled.map((r) => [r.vmId, r.points]));
  const leftOut = new Map((facts.leftOut ?? []).map((l) => [l.vmId, l.disks]));
  const slotOf = new Map(live.filter((p) => p.definition.enabled).map((p) => [p, nextSlot(parseCron(p.definition.schedule.cron), p.definition.schedule.timezone, now)]));
  return [...ids].sort().map((vmId) => {
    const vm = vms.get(vmId) ?? { vmId, name: null, agentId: null };
    const policies = live.filter((p) => selects(p.definition.vms, vm));
    const enabled = policies.filter((p) => p.definition.enabled);
    const newest = newestOf.get(vmId) ?? null;
    const ageHours = newest ? (now.getTime() - newest.createdAt.getTime()) / 3_600_000 : null;
    const rpoHours = enabled.length ? Math.min(...enabled.map((p) => p.definition.rpoHours)) : null;
    const status: RpoStatus = rpoHours === null || ageHours === null ? 'unprotected' : ageHours <= rpoHours ? 'protected' : 'at-risk';
    const state: ProtectionState = ageHours === null ? 'never-backed-up' : rpoHours === null ? 'no-policy' : status === 'at-risk' ? 'at-risk' : 'protected';
    const slots = enabled.map((p) => slotOf.get(p)!).filter((s): s is Date => s !== null);
    return {
      vmId,
      name: vm.name,
      policies: policies.map((p) => ({ policyId: p.policyId, name: p.definition.name, rpoHours: p.definition.rpoHours, enabled: p.definition.enabled })),
      lastRestorePoint: newest ? { restorePointId: newest.restorePointId, repositoryId: newest.repositoryId, createdAt: newest.createdAt.toISOString(), ageHours: Math.round(ageHours! * 100) / 100 } : null,
      rpoHours,
      status,
      state,
      overdueHours: state === 'at-risk' ? Math.round((ageHours! - rpoHours!) * 10_000) / 10_000 : null,
      failuresInRow: streaks.get(vmId) ?? 0,
      nextSlot: slots.length ? new Date(Math.min(...slots.map((s) => s.getTime()))).toISOString() : null,
      drill: drillOf(drills.get(vmId)),
      recycledPoints: recycled.get(vmId) ?? 0,
      disksLeftOut: leftOut.get(vmId) ?? [],
    };
  });
}

function drillOf(d: DrillFacts | undefined): VmProtection['drill'] {
  if (!d) return null;
  return { lastPassedAt: d.passed?.at.toISOString() ?? null, bootMs: d.passed?.bootMs ?? null, restorePointId: d.passed?.restorePointId ?? null, lastAt: d.last.at.toISOString(), lastPassed: d.last.passed, lastReason: d.last.reason };
}
