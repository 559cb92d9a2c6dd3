import { chunkPointFile, chunkPointOf, isChunkPointFile } from './chunk-points';

describe('chunk point files', () => {
  it("names a point's index under the store as vmId/pointId/diskId and reads the name back from it", () => {
    const file = chunkPointFile('vm1', 'disk0', 'rp-1');
    expect(file).toBe('chunks/points/vm1/rp-1/disk0.idx');
    expect(chunkPointOf(file)).toEqual({ store: 'chunks', name: 'vm1/rp-1/disk0' });
    expect(chunkPointOf(`/srv/repo/${file}`)).toEqual({ store: '/srv/repo/chunks', name: 'vm1/rp-1/disk0' });
  });

  it('tells no qcow2 file, and no malformed index path, for a chunk point', () => {
    for (const file of ['vm1/disk0/rp-1.qcow2', '/srv/repo/chunks/vm1/disk0/rp-1.qcow2', '/srv/repo/chunks/points/vm1/disk0.idx', '/srv/repo/chunks/points/a/b/c/d.idx', '/srv/chunks/points/vm1/rp/disk0.qcow2']) {
      expect({ file, chunk: isChunkPointFile(file) }).toEqual({ file, chunk: false });
    }
  });
});
