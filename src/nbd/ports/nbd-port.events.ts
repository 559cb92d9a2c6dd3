import { DomainEvent } from '../../eventing/aggregate';

export const NBD_PORT_ALLOCATED = 'NbdPortAllocated';
export const NBD_PORT_RELEASED = 'NbdPortReleased';

export type NbdPortAllocated = DomainEvent<typeof NBD_PORT_ALLOCATED, { port: number; jobId: string; diskId: string; leaseId: string }>;
export type NbdPortReleased = DomainEvent<typeof NBD_PORT_RELEASED, { port: number; jobId: string; leaseId: string; reason: string }>;
export type NbdPortEvent = NbdPortAllocated | NbdPortReleased;

export const NBD_PORTS_STREAM_PREFIX = 'nbd-ports-';
export const nbdPortsStream = (hostId: string) => `${NBD_PORTS_STREAM_PREFIX}${hostId}`;
