import { age } from '../format';
import { Badge } from '../ui/badge';

type State = 'protected' | 'at-risk' | 'no-policy' | 'never-backed-up';
/** A VM of the protection report (`GET /api/v1/reports/protection`), as the overview and the VM page show it. */
export interface VmProtection {
  vmId: string;
  name: string;
  status: 'protected' | 'at-risk' | 'unprotected';
  state: State;
  overdueHours: number | null;
  rpoHours: number | null;
  failuresInRow: number;
  lastRestorePoint: { restorePointId: string; repositoryId: string; createdAt: string; ageHours: number } | null;
  policies: { policyId: string; name: string; enabled: boolean }[];
  /** Disks no point holds (its agent cannot read them), whatever the state says of the RPO. */
  disksLeftOut?: { diskId: string; reason: string }[];
}


/** The VM's state as the morning check sorts it, a failed last backup first. */
export function StateBadge({ vm }: { vm: VmProtection }) {
  if (vm.failuresInRow > 0) return <Badge tone="bad" state="failed" text={`last backup failed${vm.failuresInRow > 1 ? ` (${vm.failuresInRow} in a row)` : ''}`} />;
  if (vm.state === 'at-risk') return <Badge tone="bad" state="at-risk" text={`at risk: ${age(vm.overdueHours ?? 0)} over its RPO`} />;
  if (vm.state === 'never-backed-up') return <Badge tone="warn" state="never-backed-up" text="never backed up" />;
  if (vm.state === 'no-policy') return <Badge tone="warn" state="no-policy" text="backed up, no policy" />;
  if (vm.disksLeftOut?.length) return <Badge tone="warn" state="lacks-disks" text={`protected, but not ${vm.disksLeftOut.map((d) => d.diskId).join(', ')}`} />;
  return <Badge tone="ok" state="protected" text="protected" />;
}
