import { blockJobBytes } from './libvirt-restorer';

describe('blockJobBytes', () => {
  it("reads the bytes copied and to copy from virsh blockjob --info --raw (tools/virsh-domain.c's raw format)", () => {
    expect(blockJobBytes(' type=Pull\n bandwidth=0\n cur=268435456\n end=1374389534\n')).toEqual({ cur: 268435456, end: 1374389534 });
  });

  it('reads no progress from the percentage virsh prints without --raw, nor from a disk with no job', () => {
    // what --info --bytes printed: the figure every instant recovery reported as 0 (issue 39, finding 4)
    expect(blockJobBytes('Block Pull: [ 19 %]\n')).toBeNull();
    expect(blockJobBytes('No current block job for vda\n')).toBeNull();
    expect(blockJobBytes('')).toBeNull();
  });
});
