import { constants, type Stats } from 'node:fs';
import { access, realpath, stat } from 'node:fs/promises';
import { systemTreeOf } from '../../../wire/storage-dir';
import { Refusal } from '../../refusal';
import type { LibvirtSource } from './libvirt-source';

/**
 * What the host can tell of a restore's target before the hub records it: that the directory the disks are
 * written into is one, is writable, and is not a kernel tree behind a link; that a replaced domain and its disk
 * files are there. Each refusal names what it found, so the operator can fix it; nothing is created.
 */
export async function checkWritableDir(dir: string, what: string, opts: { systemTrees: boolean }): Promise<void> {
  let real: string;
  try {
    real = await realpath(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Refusal(422, `${what} does not exist: a restore writes into an existing directory and creates none`);
    if (code === 'ENOTDIR') throw new Refusal(422, `${what} is not a directory (a part of its path is a file)`);
    throw new Refusal(422, `${what} cannot be resolved: ${(error as Error).message}`);
  }
  const tree = systemTreeOf(real);
  if (opts.systemTrees && tree) throw new Refusal(422, `${what} is ${real}, in ${tree}: that is a kernel interface, not storage`);
  if (!(await stat(real)).isDirectory()) throw new Refusal(422, `${what} is not a directory`);
  await access(real, constants.W_OK).catch((error: NodeJS.ErrnoException) => {
    throw new Refusal(422, `${what} is not writable by the agent (${error.code === 'EROFS' ? 'a read-only filesystem' : error.code})`);
  });
}

/** The domain a replace writes into; a libvirt that answers but has no such domain is the request's 404, a libvirt that does not answer is the agent's failure. */
export async function replacedDomain(source: LibvirtSource, vmId: string): ReturnType<LibvirtSource['domain']> {
  return source.domain(vmId).catch((error: Error) => {
    if (/failed to get domain|domain not found|no domain with matching/i.test(error.message)) {
      throw new Refusal(404, `VM ${vmId} is not a domain of this agent's libvirt (${source.uri}): restore the point as a new domain`);
    }
    throw error;
  });
}

/** The file a replace renames its written disk over: it must be there (its owner and mode are kept), and its directory writable. */
export async function replacedDiskFile(domain: string, diskId: string, file: string, dir: string): Promise<Stats> {
  const s = await stat(file).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') throw new Refusal(409, `domain ${domain} has no file ${file} for its disk ${diskId} (moved or removed?): put it back, or restore the point as a new domain`);
    throw error;
  });
  await checkWritableDir(dir, `the directory ${dir} of domain ${domain}'s disk ${diskId}`, { systemTrees: false });
  return s;
}
