import { NBD_STATE_HOLE, NBD_STATE_ZERO } from '../../../nbd-protocol';
import { extentList } from './instant-disks';

describe("the point's allocation as the proxy's extent list", () => {
  it('writes data, zero and hole extents as nbdkit-extentlist-filter reads them', () => {
    expect(extentList([
      { offset: 0, length: 65536, flags: 0 },
      { offset: 65536, length: 131072, flags: NBD_STATE_ZERO },
      { offset: 196608, length: 1048576, flags: NBD_STATE_HOLE | NBD_STATE_ZERO },
    ])).toBe('0 65536\n65536 131072 zero\n196608 1048576 hole,zero\n');
  });
});
