import { Inject, Injectable } from '@nestjs/common';
import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, resolve, sep } from 'node:path';
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
    const roots = [...this.config.exportRoots, ...this.extraRoots];
    // Outside every root → 400 before touching the file, so the API never says whether it exists.
    if (!roots.some((root) => isInside(resolve(file), root))) throw new DomainError('invalid', `file ${file} is outside the configured repositories`);
    let real: string;
    try {
      real = await realpath(file);
    } catch {
      throw new DomainError('not_found', `file ${file} does not exist`);
    }
    const realRoots = await Promise.all(roots.map((r) => realpath(r).catch(() => null)));
    if (!realRoots.some((root) => root !== null && isInside(real, root))) {
      throw new DomainError('invalid', `file ${file} is outside the configured repositories`);
    }
    if (!(await stat(real)).isFile()) throw new DomainError('invalid', `file ${file} is not a regular file`);
    return real;
  }
}

function isInside(path: string, root: string): boolean {
  return path.startsWith(root.endsWith(sep) ? root : root + sep);
}
