import { Aggregate } from '../../eventing/aggregate';
import { DomainError } from '../../eventing/domain-error';
import { NBD_PORT_ALLOCATED, NBD_PORT_RELEASED, NbdPortEvent, NbdPortReleased } from './nbd-port.events';

export interface PortLease {
  port: number;
  leaseId: string;
  jobId: string;
  diskId: string;
}

export interface PortPoolState {
  /** Active leases by port. */
  leases: Readonly<Record<number, PortLease>>;
  lastAllocated: number | null;
}

export interface PortRange {
  first: number;
  last: number;
}

export type PortPoolCommand =
  | { kind: 'allocate'; jobId: string; diskId: string; leaseId: string; range: PortRange }
  /** `exporting`: leases whose qemu-nbd (on any hub process) is starting or serving right now. */
  | { kind: 'release'; port: number; leaseId?: string; reason: string; range: PortRange; exporting: readonly string[] }
  | { kind: 'releaseJob'; jobId: string; reason: string };

/**
 * One pool per hub host. Ports are handed out round-robin from the last one
 * leased, so a port that was just released is the last to be reused.
 */
export const nbdPortPoolAggregate: Aggregate<PortPoolState, PortPoolCommand, NbdPortEvent> = {
  initialState: () => ({ leases: {}, lastAllocated: null }),

  evolve(state, event) {
    switch (event.type) {
      case NBD_PORT_ALLOCATED: {
        const { port, leaseId, jobId, diskId } = event.data;
        return { leases: { ...state.leases, [port]: { port, leaseId, jobId, diskId } }, lastAllocated: port };
      }
      case NBD_PORT_RELEASED: {
        const leases = { ...state.leases };
        delete leases[event.data.port];
        return { ...state, leases };
      }
    }
  },

  decide(command, state) {
    switch (command.kind) {
      case 'allocate': {
        const held = Object.values(state.leases).find((l) => l.jobId === command.jobId && l.diskId === command.diskId);
        if (held) throw new DomainError('conflict', `job ${command.jobId} disk ${command.diskId} already holds port ${held.port} (lease ${held.leaseId})`);
        const port = nextFreePort(state, command.range);
        if (port === null) {
          const size = command.range.last - command.range.first + 1;
          throw new DomainError('conflict', `NBD port pool exhausted: all ${size} ports ${command.range.first}-${command.range.last} are leased`);
        }
        return [{ type: NBD_PORT_ALLOCATED, data: { port, jobId: command.jobId, diskId: command.diskId, leaseId: command.leaseId } }];
      }
      case 'release': {
        const { first, last } = command.range;
        const lease = Number.isInteger(command.port) ? state.leases[command.port] : undefined;
        // a port leased before the hub's range changed is still released: only a port nobody holds is checked against it
        if (!lease && (!Number.isInteger(command.port) || command.port < first || command.port > last)) {
          throw new DomainError('invalid', `port ${command.port} is outside the NBD port pool ${first}-${last}`);
        }
        if (lease && command.exporting.includes(lease.leaseId)) {
          throw new DomainError('conflict', `port ${command.port} serves a running export (lease ${lease.leaseId}); stop it first: DELETE /api/v1/nbd/ports/job/${lease.jobId} stops the job's exports and releases its ports`);
        }
        if (!lease) throw new DomainError('not_found', `port ${command.port} is not leased`);
        if (command.leaseId && lease.leaseId !== command.leaseId) {
          throw new DomainError('conflict', `port ${command.port} is now held by lease ${lease.leaseId}, not ${command.leaseId}`);
        }
        return [released(lease, command.reason)];
      }
      case 'releaseJob':
        return Object.values(state.leases)
          .filter((l) => l.jobId === command.jobId)
          .map((l) => released(l, command.reason));
    }
  },
};

function released(lease: PortLease, reason: string): NbdPortReleased {
  return { type: NBD_PORT_RELEASED, data: { port: lease.port, jobId: lease.jobId, leaseId: lease.leaseId, reason } };
}

function nextFreePort(state: PortPoolState, range: PortRange): number | null {
  const size = range.last - range.first + 1;
  const after = state.lastAllocated !== null && state.lastAllocated >= range.first && state.lastAllocated <= range.last ? state.lastAllocated - range.first + 1 : 0;
  for (let i = 0; i < size; i++) {
    const port = range.first + ((after + i) % size);
    if (!state.leases[port]) return port;
  }
  return null;
}

export function leaseById(state: PortPoolState, leaseId: string): PortLease | undefined {
  return Object.values(state.leases).find((l) => l.leaseId === leaseId);
}
