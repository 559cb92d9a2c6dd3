import { statfs } from 'node:fs/promises';
import { NbdServer } from '../../nbd-protocol/nbd-server';
import { Qcow2ChainView, readPieceNow } from '../../repositories/qcow2/chain-view';
import { EXPORT_NAME, workDirLayout } from './work-dir-layout';

/** A point's chain served by the hub itself until stopped. */
export interface ChainExport {
  stop(): Promise<void>;
}

/** statfs(2) magic numbers of filesystems whose reads may wait on a network or another process: NFS, CIFS, SMB2, FUSE. */
const REMOTE_FILESYSTEMS = new Set([0x6969, 0xff534d42, 0xfe534d42, 0x65735546]);

/**
 * The point's chain served read-only on the mount's socket from the hub's own resolution of it (Qcow2ChainView),
 * whose reads cost the same at any depth: qemu-nbd opened the newest of 201 points several times slower than the
 * newest of 2 and read through it as much slower (docs/benchmarks.md, chain).
 *
 * Reads run on the hub's own thread (readPieceNow), since the hub reads the mounted files through libuv's threads.
 * Handed to a thread of their own one request at a time, a mount read 129 MiB/s; this way 494 MiB/s, as through
 * qemu-nbd on the same machine (`npm run bench -- restore`). So only files on a local filesystem are served this
 * way: on NFS or CIFS a read may wait on the network and would hold the hub meanwhile. null there, and for a layout the view does not resolve (an
 * encrypted repository, compressed clusters): qemu-nbd serves those.
 *
 * qemu-nbd's image locks made a merge by another process fail while a point was mounted. Here the view holds the
 * chain's files open instead, and what Sendense does to a chain under a reader (a commit into the parent without
 * emptying the file it came from, renames, a rebase that writes only clusters the reader takes from files above)
 * never rewrites a cluster the view reads; a delete of a mounted point is refused (MountReadingFilesQuery).
 */
export async function startChainExport(imageFile: string, workDir: string): Promise<ChainExport | null> {
  if (REMOTE_FILESYSTEMS.has((await statfs(imageFile)).type)) return null;
  // a chain the view cannot open (a backing file missing) is left to qemu-nbd too, which says why in its own words
  const view = await Qcow2ChainView.open(imageFile, { reader: readPieceNow }).catch(() => null);
  if (!view) return null;
  try {
    const server = await NbdServer.listen(workDirLayout.socket(workDir), EXPORT_NAME, view);
    return {
      stop: async () => {
        await server.close();
        await view.close();
      },
    };
  } catch (error) {
    await view.close();
    throw error;
  }
}
