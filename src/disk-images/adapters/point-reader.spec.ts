import { clipExtents } from './point-reader';

describe('clipExtents: the part of a status asked for around a range that is not on the server blocks', () => {
  const extents = [
    { length: 512, zero: false },
    { length: 1024, zero: true },
    { length: 512, zero: false },
  ];

  it('keeps exactly [skip, skip + length), split where the extents are', () => {
    expect(clipExtents(extents, 100, 1800)).toEqual([
      { length: 412, zero: false },
      { length: 1024, zero: true },
      { length: 364, zero: false },
    ]);
    expect(clipExtents(extents, 600, 10)).toEqual([{ length: 10, zero: true }]);
    expect(clipExtents(extents, 2047, 1)).toEqual([{ length: 1, zero: false }]);
  });

  it('is the whole status when nothing is cut, and never longer than asked', () => {
    expect(clipExtents(extents, 0, 2048)).toEqual(extents);
    expect(clipExtents(extents, 0, 4096)).toEqual(extents);
    expect(clipExtents(extents, 0, 0)).toEqual([]);
  });
});
