import { Inject, Injectable } from '@nestjs/common';
import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, sep } from 'node:path';
import { HUB_CONFIG, HubConfig } from '../../config/hub-config';
import { DomainError } from '../../eventing/domain-error';

/** Only image files inside configured roots may be exported; symlinks are resolved before the check. */
@Injectable()
export class ExportPathPolicy {
  private readonly extraRoots = new Set<string>();

  constructor(@Inject(HUB_CONFIG) private readonly config: HubConfig) {}

  addRoot(root: string): void {
    this.extraRoots.add(root);
  }

  removeRoot(root: string): void {
    this.extraRoots.delete(root);
  }

  async check(file: string): Promise<string> {
    if (!isAbsolute(file) || file.includes('\0')) throw new DomainError('invalid', 'file must be an absolute path');
    let real: string;
    try {
      real = await realpath(file);
    } catch {
      throw new DomainError('not_found', `file ${file} does not exist`);
    }
    const roots = await Promise.all([...this.config.exportRoots, ...this.extraRoots].map((r) => realpath(r).catch(() => null)));
    if (!roots.some((root) => root !== null && real.startsWith(root.endsWith(sep) ? root : root + sep))) {
      throw new DomainError('invalid', `file ${file} is outside the configured repositories`);
    }
    if (!(await stat(real)).isFile()) throw new DomainError('invalid', `file ${file} is not a regular file`);
    return real;
  }
}
