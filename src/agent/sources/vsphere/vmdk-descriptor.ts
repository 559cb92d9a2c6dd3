/**
 * The one extent of a VMware virtual disk that Sendense can read over datastore HTTP: a flat file of raw
 * sectors. The descriptor (`disk.vmdk`) is a small text file naming its extents; the data lives in
 * `disk-flat.vmdk` on VMFS and NFS datastores. Sparse, SE sparse (snapshot deltas), raw device mappings
 * and vSAN/vVol objects have no such file, and are refused by name rather than read wrongly.
 */
export interface FlatExtent {
  /** The flat file, relative to the descriptor's directory. */
  file: string;
  /** Bytes the extent holds (sectors × 512). */
  bytes: number;
  /** Byte offset of the disk's first sector in the file. */
  offset: number;
}

export class UnsupportedDiskError extends Error {}

const FLAT_TYPES = new Set(['FLAT', 'VMFS']);
/** A descriptor is a few hundred bytes; a file much larger than this is not one. */
export const MAX_DESCRIPTOR_BYTES = 64 * 1024;

export function parseVmdkDescriptor(text: string, name: string): FlatExtent {
  if (text.startsWith('KDMV') || text.startsWith('COWD')) throw new UnsupportedDiskError(`${name} is a sparse VMDK with an embedded descriptor: only flat disks can be read over datastore HTTP`);
  if (!/^#\s*Disk DescriptorFile/m.test(text)) throw new UnsupportedDiskError(`${name} is not a VMDK descriptor file`);
  const parentCid = /^parentCID\s*=\s*"?([0-9a-fA-F]+)"?\s*$/m.exec(text)?.[1];
  if (parentCid && parentCid.toLowerCase() !== 'ffffffff') {
    throw new UnsupportedDiskError(`${name} is a delta disk (its parent is another snapshot's): remove the VM's other snapshots so the backup snapshot's parent is its flat base disk`);
  }
  const extents: { access: string; sectors: number; type: string; file: string; offset: number }[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Z]+)(?:\s+"([^"]+)"(?:\s+(\d+))?)?\s*$/.exec(line);
    if (m) extents.push({ access: m[1], sectors: Number(m[2]), type: m[3], file: m[4] ?? '', offset: Number(m[5] ?? 0) });
  }
  if (extents.length === 0) throw new UnsupportedDiskError(`${name} names no extent`);
  if (extents.length > 1) throw new UnsupportedDiskError(`${name} has ${extents.length} extents: only single-extent flat disks are read`);
  const [e] = extents;
  if (!FLAT_TYPES.has(e.type)) throw new UnsupportedDiskError(`${name} is a ${e.type} extent: only FLAT and VMFS (flat) extents can be read over datastore HTTP`);
  if (!e.file || e.file.includes('/') || e.file.startsWith('.')) throw new UnsupportedDiskError(`${name} names its extent file ${JSON.stringify(e.file)}: a file beside the descriptor is expected`);
  return { file: e.file, bytes: e.sectors * 512, offset: e.offset * 512 };
}

/** `[datastore] dir/disk.vmdk` -> its datastore and path. */
export function parseDatastorePath(fileName: string): { datastore: string; path: string } {
  const m = /^\[([^\]]+)\]\s*(.+)$/.exec(fileName);
  if (!m) throw new UnsupportedDiskError(`${JSON.stringify(fileName)} is not a datastore path ([datastore] dir/disk.vmdk)`);
  return { datastore: m[1], path: m[2] };
}
