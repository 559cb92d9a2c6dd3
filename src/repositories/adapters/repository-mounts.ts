import { Injectable } from '@nestjs/common';
import { chmodSync, mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { DomainError } from '../../eventing/domain-error';
import { cifsCredentials, cifsMountCommand, nfsMountCommand, unmountCommand } from '../registry/mount-commands';
import { RepositoryDefinition } from '../registry/repository.events';
import { MountRunner } from './mount-runner';

/** Makes a repository's root usable on this host, and gives it back. */
@Injectable()
export class RepositoryMounts {
  private readonly mounts = new MountRunner();

  /** Local: make sure the directory exists. NFS/CIFS: mount it under the data dir (unverified here: no kernel modules). */
  async attach(definition: RepositoryDefinition): Promise<void> {
    mkdirSync(definition.root, { recursive: true, mode: 0o750 });
    if (definition.kind === 'local' || isMountPoint(definition.root)) return;
    try {
      if (definition.nfs) await this.mounts.run(nfsMountCommand(definition.nfs, definition.root));
      if (definition.cifs) {
        const credentials = `${definition.root}.credentials`;
        writeFileSync(credentials, cifsCredentials(definition.cifs.username, readFileSync(definition.cifs.passwordFile, 'utf8').trim()), { mode: 0o600 });
        chmodSync(credentials, 0o600);
        await this.mounts.run(cifsMountCommand(definition.cifs, definition.root, credentials));
      }
    } catch (error) {
      rmSync(definition.root, { recursive: true, force: true });
      throw new DomainError('invalid', `could not mount the ${definition.kind} repository: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  async detach(definition: RepositoryDefinition): Promise<void> {
    if (definition.kind === 'local') return;
    if (isMountPoint(definition.root)) await this.mounts.run(unmountCommand(definition.root));
    rmSync(`${definition.root}.credentials`, { force: true });
    try {
      rmdirSync(definition.root);
    } catch {
      /* not empty or already gone: leave it for the operator */
    }
  }
}

function isMountPoint(path: string): boolean {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some((line) => line.split(' ')[4] === path);
  } catch {
    return false;
  }
}
