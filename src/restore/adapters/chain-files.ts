import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { ChainFile, PointToMount } from '../restore-mount.aggregate';
import { RestoreMountSource } from '../queries/restore-mount-source.query';

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The real path of every file each disk of the point reads through (symlinked repositories resolve), or why it is missing. */
export async function resolveChainFiles(source: RestoreMountSource): Promise<PointToMount> {
  const disks = await Promise.all(
    source.disks.map(async ({ diskId, files }) => ({
      diskId,
      chain: await Promise.all(
        files.map(async (relative): Promise<ChainFile> => {
          try {
            return { relative, real: await fs.realpath(join(source.root, relative)) };
          } catch (error) {
            return { relative, real: null, problem: messageOf(error) };
          }
        }),
      ),
    })),
  );
  return { restorePointId: source.restorePointId, vmId: source.vmId, repositoryId: source.repositoryId, status: source.status, disks };
}
