import { protectionTable } from './report-cli';
import type { ProtectionReport } from '../../policies/reports/queries/protection-report.query';

const vm = (over: Partial<ProtectionReport['vms'][number]>): ProtectionReport['vms'][number] => ({
  vmId: 'vm1',
  name: 'web-1',
  policies: [],
  lastRestorePoint: null,
  rpoHours: null,
  status: 'unprotected',
  state: 'never-backed-up',
  overdueHours: null,
  failuresInRow: 0,
  nextSlot: null,
  drill: null,
  recycledPoints: 0,
  disksLeftOut: [],
  ...over,
});

describe('sendense report protection', () => {
  it("says each VM's state as the console does: at risk with how long over its RPO, never backed up, no policy", () => {
    const lines = protectionTable({
      at: '2026-11-27T10:00:00.000Z',
      replayed: false,
      vms: [
        vm({ vmId: 'a', status: 'at-risk', state: 'at-risk', overdueHours: 2.25, rpoHours: 24, lastRestorePoint: { restorePointId: 'rp1', repositoryId: 'r', createdAt: '2026-11-26T07:45:00.000Z', ageHours: 26.25 } }),
        vm({ vmId: 'b' }),
        vm({ vmId: 'c', state: 'no-policy', lastRestorePoint: { restorePointId: 'rp2', repositoryId: 'r', createdAt: '2026-11-27T09:00:00.000Z', ageHours: 1 } }),
        vm({ vmId: 'd', status: 'protected', state: 'protected', rpoHours: 24, disksLeftOut: [{ diskId: 'vdb', reason: "type='network' disks are not supported" }, { diskId: 'vdc', reason: 'r' }], lastRestorePoint: { restorePointId: 'rp3', repositoryId: 'r', createdAt: '2026-11-27T09:00:00.000Z', ageHours: 1 } }),
      ],
    }).split('\n');
    expect(lines[1]).toMatch(/^VM\s+NAME\s+STATE\s+LAST POINT/);
    expect(lines[2]).toMatch(/^a\s+web-1\s+at-risk \(2\.3 h over\)\s+2026-11-26T07:45/);
    expect(lines[3]).toMatch(/^b\s+web-1\s+never-backed-up\s+-/);
    expect(lines[4]).toMatch(/^c\s+web-1\s+no-policy\s+2026-11-27T09:00/);
    // protected as far as its RPO goes, and the disks no point holds said beside it
    expect(lines[5]).toMatch(/^d\s+web-1\s+protected, LACKS vdb,vdc\s+2026-11-27T09:00/);
  });
});
