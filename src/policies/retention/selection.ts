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

/**
 * A glob on VM names: `*` any run of characters, `?` one; everything else literal. Matched by walking both strings
 * (back to the last `*` on a mismatch) rather than as a RegExp: a pattern such as `*************x` is a backtracking
 * RegExp's exponential case, and any reader may send a pattern (GET /policies/matching-vms); this takes at most
 * pattern × name steps.
 */
export function nameMatches(pattern: string, name: string): boolean {
  const p = Array.from(pattern);
  const s = Array.from(name);
  let i = 0;
  let j = 0;
  let star = -1;
  let resume = 0;
  while (j < s.length) {
    if (i < p.length && p[i] !== '*' && (p[i] === '?' || p[i] === s[j])) {
      i++;
      j++;
    } else if (i < p.length && p[i] === '*') {
      star = i++;
      resume = j;
    } else if (star >= 0) {
      // let the last `*` take one more character, and try the rest of the pattern from there
      i = star + 1;
      j = ++resume;
    } else return false;
  }
  while (p[i] === '*') i++;
  return i === p.length;
}

/** Every condition the selector gives must hold (ids, a name glob with `*` and `?`, one agent's VMs); an empty selector selects nothing. */
export function selects(selector: PolicyVmSelector, vm: VmIdentity): boolean {
  const conditions: boolean[] = [];
  if (selector.ids?.length) conditions.push(selector.ids.includes(vm.vmId));
  if (selector.namePattern) conditions.push(vm.name !== null && nameMatches(selector.namePattern, vm.name));
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
