import { PolicyDefinition, PolicyVmSelector } from '../policy.events';

export interface VmIdentity {
  vmId: string;
  /** Null when no agent reported the VM in its inventory (yet): then only an id selector can match it. */
  name: string | null;
  agentId: string | null;
}

export interface PolicyRecord {
  policyId: string;
  definition: PolicyDefinition;
  createdAt: Date;
  deletedAt: Date | null;
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

/** Every condition the selector gives must hold (ids, a name glob with `*` and `?`, one agent's VMs); an empty selector selects nothing. */
export function selects(selector: PolicyVmSelector, vm: VmIdentity): boolean {
  const conditions: boolean[] = [];
  if (selector.ids?.length) conditions.push(selector.ids.includes(vm.vmId));
  if (selector.namePattern) conditions.push(vm.name !== null && globToRegExp(selector.namePattern).test(vm.name));
  if (selector.agentId) conditions.push(vm.agentId === selector.agentId);
  return conditions.length > 0 && conditions.every(Boolean);
}

/**
 * The policies whose retention governs a backup's chain: the policy that started the job when a
 * slot did; otherwise every live policy that selects the VM and writes to that repository.
 */
export function governingPolicies(policies: PolicyRecord[], job: { policyId: string | null; repositoryId: string }, vm: VmIdentity): PolicyRecord[] {
  const live = policies.filter((p) => p.deletedAt === null);
  if (job.policyId) return live.filter((p) => p.policyId === job.policyId);
  return live.filter((p) => p.definition.repositoryId === job.repositoryId && selects(p.definition.vms, vm));
}
