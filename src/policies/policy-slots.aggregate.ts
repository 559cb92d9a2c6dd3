import { Aggregate } from '../eventing/aggregate';
import { RequestedType } from '../backups/backup.events';
import { CronSpec, slotsBetween } from './calendar';
import { CatchUp } from './policy.events';
import { PolicySlotEvent, SLOT_FIRED, SLOT_MISSED, SLOT_RETRIED, SLOT_SKIPPED, SlotFired, SlotMissed } from './policy-slots.events';

/** A slot taken for a VM whose job's fate the scheduler may still have to look after. */
export interface OpenSlot {
  slot: string;
  vmId: string;
  jobId: string;
  requestedType: RequestedType;
  attempt: number;
  /** When the request was last made: a job not recorded long after it was requested needs another request. */
  at: string;
  /** A `run` now, outside the calendar. */
  manual?: boolean;
}

export interface PolicySlotsState {
  /** The newest calendar slot handled (fired, skipped or missed): the scheduler goes on after it. */
  lastSlot: string | null;
  /** Per VM, backups the policy requested that were not skipped: every `fullEvery`-th is a full. */
  backups: Record<string, number>;
  /** The slots taken for a VM and not skipped, oldest first: every VM of the newest slot, and the newest of the others. */
  open: OpenSlot[];
}

/** Taken slots of older slots kept beside the newest slot's: the newest slot keeps all of its VMs, however many. */
const OPEN_LIMIT = 100;

/**
 * `open` with the oldest entries of older slots dropped beyond OPEN_LIMIT. Those of the newest calendar slot and of
 * the newest manual run are never dropped: the scheduler requests a slot's VMs one after another, and a VM dropped
 * before its request was made (a hub killed midway through a policy of more VMs than the limit, a run asked for
 * meanwhile) would never be requested, nor its skip recorded.
 */
function keptOpen(open: OpenSlot[]): OpenSlot[] {
  if (open.length <= OPEN_LIMIT) return open;
  const newest = (manual: boolean) => open.filter((o) => !!o.manual === manual).reduce<string | null>((n, o) => (n === null || o.slot > n ? o.slot : n), null);
  const [calendar, run] = [newest(false), newest(true)];
  const current = (o: OpenSlot) => o.slot === (o.manual ? run : calendar);
  const older = open.filter((o) => !current(o));
  const room = Math.max(0, OPEN_LIMIT - (open.length - older.length));
  const kept = new Set(older.slice(older.length - room));
  return open.filter((o) => current(o) || kept.has(o));
}

export interface SlotVm {
  vmId: string;
  jobId: string;
}

export type PolicySlotsCommand =
  /**
   * The calendar's due slots, as planned from the state the hub saw (`basedOn`, its lastSlot): when
   * another hub handled them meanwhile, nothing is recorded, so each slot is taken exactly once.
   */
  | {
      kind: 'fire';
      policyId: string;
      basedOn: string | null;
      missed: { firstSlot: string; slot: string; count: number; reason: string } | null;
      fire: { slot: string; catchUp: boolean }[];
      vms: SlotVm[][];
      fullEvery: number | null;
      at: string;
      hubInstance: string;
    }
  /** `POST /policies/{id}/run`: a slot now, outside the calendar. */
  | { kind: 'run'; policyId: string; slot: string; vms: SlotVm[]; fullEvery: number | null; at: string; hubInstance: string }
  | { kind: 'skip'; policyId: string; slot: string; vmId: string; jobId: string; reason: string }
  /** `attempt`: the attempt the hub saw; another hub that retried first makes this one a no-op. */
  | { kind: 'retry'; policyId: string; slot: string; vmId: string; jobId: string; attempt: number; at: string; hubInstance: string };

/** Every `fullEvery`-th backup of a VM under the policy is a full (the first one is a full anyway). */
export function requestedTypeFor(backupsSoFar: number, fullEvery: number | null): RequestedType {
  return fullEvery && backupsSoFar % fullEvery === 0 ? 'full' : 'auto';
}

export const policySlotsAggregate: Aggregate<PolicySlotsState, PolicySlotsCommand, PolicySlotEvent> = {
  initialState: () => ({ lastSlot: null, backups: {}, open: [] }),

  evolve(state, event) {
    switch (event.type) {
      case SLOT_FIRED: {
        const { slot, vmId, jobId, requestedType, manual, firedAt } = event.data;
        const open = keptOpen([...state.open, { slot, vmId, jobId, requestedType, attempt: 1, at: firedAt, ...(manual ? { manual: true } : {}) }]);
        return { lastSlot: manual ? state.lastSlot : later(state.lastSlot, slot), backups: { ...state.backups, [vmId]: (state.backups[vmId] ?? 0) + 1 }, open };
      }
      case SLOT_SKIPPED: {
        const { slot, vmId, jobId } = event.data;
        // A skip of a taken slot follows its SlotFired, which already moved lastSlot; a slot with no VM has only the skip.
        if (vmId === null) return { ...state, lastSlot: later(state.lastSlot, slot) };
        return { ...state, backups: { ...state.backups, [vmId]: Math.max(0, (state.backups[vmId] ?? 0) - 1) }, open: state.open.filter((o) => o.jobId !== jobId) };
      }
      case SLOT_MISSED:
        return { ...state, lastSlot: later(state.lastSlot, event.data.slot) };
      case SLOT_RETRIED: {
        const { jobId, attempt, retriedAt } = event.data;
        return { ...state, open: state.open.map((o) => (o.jobId === jobId ? { ...o, attempt, at: retriedAt } : o)) };
      }
    }
  },

  decide(command, state) {
    switch (command.kind) {
      case 'fire': {
        if (state.lastSlot !== command.basedOn) return [];
        const { policyId, fullEvery, at, hubInstance } = command;
        const events: PolicySlotEvent[] = [];
        if (command.missed) events.push({ type: SLOT_MISSED, data: { policyId, ...command.missed } } satisfies SlotMissed);
        const counts = { ...state.backups };
        command.fire.forEach(({ slot, catchUp }, i) => {
          const vms = command.vms[i] ?? [];
          if (!vms.length) events.push({ type: SLOT_SKIPPED, data: { policyId, slot, vmId: null, jobId: null, reason: 'the policy selects no VM' } });
          for (const { vmId, jobId } of vms) {
            const requestedType = requestedTypeFor(counts[vmId] ?? 0, fullEvery);
            counts[vmId] = (counts[vmId] ?? 0) + 1;
            events.push({ type: SLOT_FIRED, data: { policyId, slot, vmId, jobId, requestedType, manual: false, catchUp, firedAt: at, hubInstance } } satisfies SlotFired);
          }
        });
        return events;
      }
      case 'run': {
        const { policyId, slot, fullEvery, at, hubInstance } = command;
        return command.vms.map(({ vmId, jobId }) => ({
          type: SLOT_FIRED,
          data: { policyId, slot, vmId, jobId, requestedType: requestedTypeFor(state.backups[vmId] ?? 0, fullEvery), manual: true, catchUp: false, firedAt: at, hubInstance },
        }));
      }
      case 'skip': {
        const { policyId, slot, vmId, jobId, reason } = command;
        return state.open.some((o) => o.jobId === jobId) ? [{ type: SLOT_SKIPPED, data: { policyId, slot, vmId, jobId, reason } }] : [];
      }
      case 'retry': {
        const open = state.open.find((o) => o.jobId === command.jobId);
        if (!open || open.attempt !== command.attempt) return [];
        const { policyId, slot, vmId, jobId, at, hubInstance } = command;
        return [{ type: SLOT_RETRIED, data: { policyId, slot, vmId, jobId, attempt: open.attempt + 1, retriedAt: at, hubInstance } }];
      }
    }
  },
};

function later(a: string | null, b: string): string {
  return a === null || b > a ? b : a;
}

/** How late a slot may be handled and still count as on time: hubs that run the scheduler handle each slot within a second or two. */
export const LATE_AFTER_MS = 30_000;
/** Slots planned at once: a long outage under a fast calendar is worked through a batch per tick. */
export const PLAN_LIMIT = 5_000;

export interface SlotPlan {
  missed: { firstSlot: string; slot: string; count: number; reason: string } | null;
  fire: { slot: string; catchUp: boolean }[];
}

/**
 * Which slots after `from` are due at `now`, and what becomes of them. Only the newest due slot can
 * run (a VM takes one job at a time); older ones are missed. The newest is on time when a hub saw it
 * come; when it is late, no hub was running: `catchUp: once` runs it once, `skip` records it missed.
 */
export function planSlots(spec: CronSpec, timeZone: string, catchUp: CatchUp, from: Date, now: Date): SlotPlan | null {
  const due = slotsBetween(spec, timeZone, from, now, PLAN_LIMIT);
  if (!due.length) return null;
  const newest = due.at(-1)!;
  const truncated = due.length === PLAN_LIMIT;
  const onTime = now.getTime() - newest.getTime() <= LATE_AFTER_MS;
  const runs = !truncated && (onTime || catchUp === 'once');
  const missedSlots = runs ? due.slice(0, -1) : due;
  const reason = onTime ? 'a newer slot was due when the scheduler ran' : `no hub was running the scheduler (catchUp: ${catchUp})`;
  return {
    missed: missedSlots.length ? { firstSlot: missedSlots[0].toISOString(), slot: missedSlots.at(-1)!.toISOString(), count: missedSlots.length, reason } : null,
    fire: runs ? [{ slot: newest.toISOString(), catchUp: !onTime }] : [],
  };
}
