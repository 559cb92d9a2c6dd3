import { parseDatastorePath, parseVmdkDescriptor, UnsupportedDiskError } from './vmdk-descriptor';

const descriptor = (extent: string, parentCid = 'ffffffff') => `# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=fffffffe
parentCID=${parentCid}
createType="vmfs"

# Extent description
${extent}

# The Disk Data Base
ddb.adapterType = "lsilogic"
`;

describe('parseVmdkDescriptor', () => {
  it('reads the flat file, its size and offset', () => {
    expect(parseVmdkDescriptor(descriptor('RW 2097152 VMFS "web-flat.vmdk"'), 'web.vmdk')).toEqual({ file: 'web-flat.vmdk', bytes: 2097152 * 512, offset: 0 });
    expect(parseVmdkDescriptor(descriptor('RW 8 FLAT "d-flat.vmdk" 2'), 'd.vmdk')).toEqual({ file: 'd-flat.vmdk', bytes: 4096, offset: 1024 });
  });

  it.each([
    ['a delta disk', descriptor('RW 2097152 SESPARSE "web-000001-sesparse.vmdk"', '5a1b2c3d'), /delta disk/],
    ['a sparse extent', descriptor('RW 2097152 SPARSE "web-s001.vmdk"'), /SPARSE extent/],
    ['a raw device mapping', descriptor('RW 2097152 VMFSRDM "web-rdm.vmdk"'), /VMFSRDM extent/],
    ['two extents', descriptor('RW 1024 FLAT "a-flat.vmdk"\nRW 1024 FLAT "b-flat.vmdk"'), /2 extents/],
    ['an extent file elsewhere', descriptor('RW 1024 FLAT "../other/a-flat.vmdk"'), /beside the descriptor/],
    ['a binary sparse file', 'KDMV\u0001\u0000\u0000\u0000', /embedded descriptor/],
    ['something else', 'hello', /not a VMDK descriptor/],
  ])('refuses %s by name', (_what, text, message) => {
    expect(() => parseVmdkDescriptor(text, 'web.vmdk')).toThrow(UnsupportedDiskError);
    expect(() => parseVmdkDescriptor(text, 'web.vmdk')).toThrow(message);
  });
});

describe('parseDatastorePath', () => {
  it('splits a datastore path', () => {
    expect(parseDatastorePath('[LocalDS_0] DC0_H0_VM0/disk1.vmdk')).toEqual({ datastore: 'LocalDS_0', path: 'DC0_H0_VM0/disk1.vmdk' });
    expect(() => parseDatastorePath('/vmfs/volumes/x/disk.vmdk')).toThrow(/not a datastore path/);
  });
});
