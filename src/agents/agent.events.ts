import { DomainEvent } from '../eventing/aggregate';
import type { DiskLeftOut } from '../wire/backup-protocol';

export const AGENT_REGISTERED = 'AgentRegistered';
export const AGENT_CONNECTED = 'AgentConnected';
export const AGENT_DISCONNECTED = 'AgentDisconnected';
export const VM_INVENTORY_REPORTED = 'VmInventoryReported';

/** `label` and `datastore`: what vSphere calls the disk and where it lives (VMware sources only). */
export type InventoryDisk = { diskId: string; path: string; format: string; virtualSize: number; changeTracking: 'dirty-bitmap' | 'cbt' | 'none'; label?: string; datastore?: string };
/** `powerState`: from sources that report it (VMware). `disksLeftOut`: disks holding data the agent cannot read; absent when none. */
export type InventoryVm = { vmId: string; name: string; powerState?: PowerState; disks: InventoryDisk[]; disksLeftOut?: DiskLeftOut[] };
export type PowerState = 'on' | 'off' | 'suspended';

export type AgentRegistered = DomainEvent<typeof AGENT_REGISTERED, { agentId: string; name: string; publicKey: string; fingerprint: string; tokenId: string }>;
export type AgentConnected = DomainEvent<typeof AGENT_CONNECTED, { agentId: string; remoteAddress: string; hubInstance: string }>;
export type AgentDisconnected = DomainEvent<typeof AGENT_DISCONNECTED, { agentId: string; reason: string }>;
export type VmInventoryReported = DomainEvent<typeof VM_INVENTORY_REPORTED, { agentId: string; vms: InventoryVm[] }>;
export type AgentEvent = AgentRegistered | AgentConnected | AgentDisconnected | VmInventoryReported;

export const AGENT_STREAM_PREFIX = 'agent-';
export const agentStream = (agentId: string) => `${AGENT_STREAM_PREFIX}${agentId}`;
