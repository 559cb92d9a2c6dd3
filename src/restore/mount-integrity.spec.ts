import { DamagedRange } from '../restore-points/chain.events';
import { integrityHeaders, mountIntegrity } from './mount-integrity';

const range = (diskId: string, inPointId: string, offset = 65536): DamagedRange => ({ diskId, offset, length: 65536, expected: 'sha256:aa', actual: 'sha256:bb', inPointId });

describe('a restore point integrity as a mount of one disk shows it', () => {
  it('a point no verify spoke about is unverified, with nothing damaged', () => {
    const m = mountIntegrity(null, 'disk0');
    expect(m).toEqual({ integrity: 'unverified', verifiedAt: null, damaged: [], integrityProblems: [] });
    expect(integrityHeaders(m)).toEqual({ 'X-Sendense-Integrity': 'unverified' });
  });

  it('a verified point carries the time of its verify', () => {
    const m = mountIntegrity({ status: 'verified', verifiedAt: '2026-01-02T03:04:05.000Z', damaged: [], problems: [] }, 'disk0');
    expect(integrityHeaders(m)).toEqual({ 'X-Sendense-Integrity': 'verified', 'X-Sendense-Verified-At': '2026-01-02T03:04:05.000Z' });
  });

  it('shows the damaged blocks the mounted disk reads, and names the damage on the other disks as a problem', () => {
    const m = mountIntegrity({ status: 'corrupt', verifiedAt: null, damaged: [range('disk0', 'rp-1'), range('disk1', 'rp-1'), range('disk0', 'rp-2', 0)], problems: ['qemu-img check: 1 leaked cluster'] }, 'disk0');
    expect(m.integrity).toBe('corrupt');
    expect(m.damaged).toEqual([range('disk0', 'rp-1'), range('disk0', 'rp-2', 0)]);
    expect(m.integrityProblems).toEqual(['qemu-img check: 1 leaked cluster', 'disk disk1 of the restore point has 1 damaged block (in rp-1)']);
    expect(integrityHeaders(m)).toEqual({ 'X-Sendense-Integrity': 'corrupt', 'X-Sendense-Damaged-Ranges': '2', 'X-Sendense-Damaged-In': 'rp-1,rp-2' });
  });

  it('a point corrupt only on another disk is corrupt for every disk, with no range on this one', () => {
    const m = mountIntegrity({ status: 'corrupt', verifiedAt: '2026-01-02T03:04:05.000Z', damaged: [range('disk1', 'rp-1'), range('disk1', 'rp-1', 0)], problems: [] }, 'disk0');
    expect(m).toMatchObject({ integrity: 'corrupt', damaged: [], integrityProblems: ['disk disk1 of the restore point has 2 damaged blocks (in rp-1)'] });
    expect(integrityHeaders(m)).toEqual({ 'X-Sendense-Integrity': 'corrupt', 'X-Sendense-Verified-At': '2026-01-02T03:04:05.000Z', 'X-Sendense-Damaged-Ranges': '0' });
  });
});
