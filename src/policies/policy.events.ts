import { DomainEvent } from '../eventing/aggregate';

export const POLICY_CREATED = 'PolicyCreated';
export const POLICY_UPDATED = 'PolicyUpdated';
export const POLICY_DELETED = 'PolicyDeleted';

/** Which VMs a policy protects: every condition given must hold (ids, a name glob, one agent's VMs). */
export type PolicyVmSelector = {
  ids?: string[];
  /** A glob on the VM's name: `*` any run of characters, `?` one character. */
  namePattern?: string;
  agentId?: string;
};

/** `catchUp`: what happens to slots missed while every hub was down: run the newest once, or record them missed. */
export type CatchUp = 'once' | 'skip';

export type PolicySchedule = {
  /** `m h dom mon dow`, or with a leading seconds field. */
  cron: string;
  /** An IANA time zone: the cron reads the wall clock there. */
  timezone: string;
  catchUp: CatchUp;
};

/** Proxmox Backup Server's prune options: at least one is given. */
export type RetentionRules = {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
};

/**
 * Recovery drills of the newest restore point of each VM of the policy (in its repository), on a calendar of
 * their own in the schedule's time zone: each boots the point on `agentId`'s host (default: the VM's own
 * agent) and fails when no guest answers within `timeoutSeconds`.
 */
export type PolicyDrill = {
  cron: string;
  agentId?: string;
  timeoutSeconds: number;
};

/** A policy as the operator defines it (what POST and PUT take, and what simulate replays). */
export type PolicyDefinition = {
  name: string;
  vms: PolicyVmSelector;
  repositoryId: string;
  schedule: PolicySchedule;
  /** Every Nth backup of a VM under this policy is a full (null: fulls only when the chain needs one). */
  fullEvery: number | null;
  retention: RetentionRules;
  /** A VM whose newest restore point is older than this is at risk. */
  rpoHours: number;
  enabled: boolean;
  /** Absent: the policy schedules no drills. */
  drill?: PolicyDrill;
};

/** `createdAt`: from then on slots count (none before a policy existed is missed). */
export type PolicyCreated = DomainEvent<typeof POLICY_CREATED, PolicyDefinition & { policyId: string; createdAt: string }>;
/** The whole new definition. `updatedAt`: when a changed schedule or a re-enable starts counting slots again. */
export type PolicyUpdated = DomainEvent<typeof POLICY_UPDATED, PolicyDefinition & { policyId: string; updatedAt: string }>;
/** The policy stops; the restore points it made stay where they are. */
export type PolicyDeleted = DomainEvent<typeof POLICY_DELETED, { policyId: string; deletedAt: string }>;

export type PolicyEvent = PolicyCreated | PolicyUpdated | PolicyDeleted;

export const POLICY_STREAM_PREFIX = 'policy-';
export const policyStream = (policyId: string) => `${POLICY_STREAM_PREFIX}${policyId}`;
