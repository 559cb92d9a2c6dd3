import { chainProblem, CLOCK_SKEW_MS, pointProblem, RemotePoint, shownId } from './remote-points';

const now = new Date('2026-11-26T10:00:00.000Z');
const sha = 'a'.repeat(64);
const point = (over: Partial<Record<keyof RemotePoint, unknown>> = {}): RemotePoint =>
  ({
    restorePointId: 'rp-20261126090000-1a2b3c4d',
    vmId: 'vm1',
    backupId: '0b9c1e5e-3f7a-4a8e-9c61-2f1f6d8c0a11',
    type: 'full',
    parentId: null,
    createdAt: '2026-11-26T09:00:00.000Z',
    disks: [{ diskId: 'disk1', file: 'vm1/disk1/x.qcow2', parentFile: null, virtualSize: 1 << 20, fileBytes: 1, changeRef: null, digests: { file: 'f', sha256: sha, blocks: 1 } }],
    consistency: null,
    consistencyReason: null,
    freezeMs: null,
    configuration: null,
    integrity: 'unverified',
    ...over,
  }) as RemotePoint;

describe('a remote point at the boundary', () => {
  it('takes a point as the product makes it', () => {
    expect(pointProblem(point(), now)).toBeNull();
    expect(pointProblem(point({ createdAt: new Date(now.getTime() + CLOCK_SKEW_MS - 1000).toISOString() }), now)).toBeNull();
    expect(pointProblem(point({ disksLeftOut: [{ diskId: 'vdb', reason: "type='network' disks are not supported" }] }), now)).toBeNull();
  });

  it.each([
    ['a vmId leading out of the repository', { vmId: 'vm-b/../../../../x' }, /^vmId "vm-b\/\.\.\/\.\.\/\.\.\/\.\.\/x" is not a valid identifier/],
    ['a restorePointId with a slash', { restorePointId: 'a/b' }, /^restorePointId "a\/b" is not a valid identifier/],
    ['a restorePointId with NUL', { restorePointId: 'rp\0x' }, /^restorePointId "rp\\u0000x" is not a valid identifier/],
    ['a restorePointId of 300 characters', { restorePointId: 'r'.repeat(300) }, /^restorePointId "r{80}…\(300 characters\)" is not a valid identifier/],
    ['a parentId of ..', { type: 'incremental', parentId: '..' }, /^parentId "\.\." is not a valid identifier/],
    ['a backupId with a slash', { backupId: '../b' }, /^backupId/],
    ['a diskId leading out', { disks: [{ ...point().disks[0], diskId: '../../etc' }] }, /^diskId "\.\.\/\.\.\/etc" is not a valid identifier/],
    ['a disk listed twice', { disks: [point().disks[0], point().disks[0]] }, /^disk disk1 is listed twice$/],
    ['no disks', { disks: [] }, /^it lists no disks$/],
    ['a negative virtual size', { disks: [{ ...point().disks[0], virtualSize: -1 }] }, /^disk disk1 has virtual size/],
    ['a createdAt in 2099', { createdAt: '2099-01-01T00:00:00.000Z' }, /^createdAt 2099-01-01T00:00:00.000Z is \d+ minutes ahead of this hub's clock \(2026-11-26T10:00:00.000Z; 5 minutes of skew are allowed\)$/],
    ['a createdAt just past the skew', { createdAt: new Date(now.getTime() + CLOCK_SKEW_MS + 60_000).toISOString() }, /^createdAt .* is 6 minutes ahead/],
    ['a createdAt that is no instant', { createdAt: 'yesterday' }, /^createdAt "yesterday" is not an ISO 8601 instant$/],
    ['a type that is neither', { type: 'differential' }, /^type "differential" is neither full nor incremental$/],
    ['a consistencyReason with NUL', { consistency: 'crash', consistencyReason: 'x\0y' }, /^its consistencyReason is not a line of text$/],
    ['a consistency that is neither', { consistency: 'perfect' }, /^consistency "perfect" is neither application nor crash$/],
    ['a negative freeze', { freezeMs: -5 }, /^freezeMs -5 is not a duration$/],
    ['disks left out that are not a list', { disksLeftOut: 'vdb' }, /^disksLeftOut must list at most 256 disks$/],
    ['a disk left out whose name turns text around', { disksLeftOut: [{ diskId: 'vdb\u202e', reason: 'r' }] }, /^disksLeftOut\[0\]\.diskId must be 1-128 printable characters$/],
    ['a disk left out without a reason', { disksLeftOut: [{ diskId: 'vdb', reason: '' }] }, /^disksLeftOut\[0\]\.reason must be a non-empty string$/],
  ])('refuses %s', (_why, over, reason) => {
    expect(pointProblem(point(over), now)).toMatch(reason);
  });

  it('refuses what is not a point at all', () => {
    expect(pointProblem(null, now)).toBe('it is not an object');
    expect(pointProblem('rp-1', now)).toBe('it is not an object');
  });

  it('shows a hostile id quoted and cut, never raw', () => {
    expect(shownId('rp-1')).toBe('rp-1');
    expect(shownId('a\0b')).toBe('"a\\u0000b"');
    expect(shownId('x'.repeat(300))).toBe(`"${'x'.repeat(80)}"…(300 characters)`);
    expect(shownId(undefined)).toBe("undefined");
    expect(pointProblem(point({ disks: [{ ...point().disks[0], virtualSize: -1 }] }), now)).toBe("disk disk1 has virtual size -1, not a positive integer");
  });
});

describe("a remote point's chain", () => {
  const parent = point({ restorePointId: 'rp-1' });
  const child = point({ restorePointId: 'rp-2', type: 'incremental', parentId: 'rp-1' });
  const facts = (over: Partial<Parameters<typeof chainProblem>[1]> = {}) => ({ heldHere: () => false, listed: new Map<string, RemotePoint>(), refused: new Set<string>(), ...over });

  it('fits when its parent is held here or listed for the same VM in this run', () => {
    expect(chainProblem(child, facts({ heldHere: (id) => id === 'rp-1' }))).toBeNull();
    expect(chainProblem(child, facts({ listed: new Map([['rp-1', parent]]) }))).toBeNull();
    expect(chainProblem(parent, facts())).toBeNull();
  });

  it('refuses an incremental whose parent is nowhere, refused, itself or of another VM', () => {
    expect(chainProblem(child, facts())).toBe('its parent rp-1 is neither held here nor listed by the remote hub');
    expect(chainProblem(child, facts({ listed: new Map([['rp-1', parent]]), refused: new Set(['rp-1']) }))).toBe('its parent rp-1 was refused in this run');
    expect(chainProblem(point({ restorePointId: 'rp-3', type: 'incremental', parentId: 'rp-3' }), facts())).toBe('it names itself as its parent');
    expect(chainProblem(child, facts({ listed: new Map([['rp-1', point({ restorePointId: 'rp-1', vmId: 'vm2' })]]) }))).toBe('its parent rp-1 belongs to VM vm2, not vm1');
    expect(chainProblem(point({ type: 'incremental', parentId: null }), facts())).toBe('an incremental point names no parent');
    expect(chainProblem(point({ parentId: 'rp-1' }), facts())).toBe('a full point names parent rp-1');
  });
});
