import { Inject, Injectable } from '@nestjs/common';
import { QueryBus } from '@nestjs/cqrs';
import { lstat, realpath, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { HUB_CONFIG, HubConfig } from '../../config/hub-config';
import { DomainError } from '../../eventing/domain-error';
import { ActiveRepositoriesQuery } from '../../repositories/queries/active-repositories.query';

/**
 * Only image files inside the configured roots and the active repositories may be exported; symlinks are resolved
 * before the check. The repositories are read when an export is asked for: a removed one exports nothing from then on.
 */
@Injectable()
export class ExportPathPolicy {
  constructor(
    @Inject(HUB_CONFIG) private readonly config: HubConfig,
    private readonly queries: QueryBus,
  ) {}

  private async roots(): Promise<string[]> {
    return [...this.config.exportRoots, ...(await this.queries.execute(new ActiveRepositoriesQuery())).map((r) => r.root)];
  }

  async check(file: string): Promise<string> {
    if (!isAbsolute(file) || file.includes('\0')) throw new DomainError('invalid', 'file must be an absolute path');
    const roots = await this.roots();
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

  /**
   * A file an export is to create (a new chunk point's index): its directory, as far as it exists, must resolve
   * inside a root, and the name itself must not be there yet.
   */
  async checkNew(file: string): Promise<string> {
    if (!isAbsolute(file) || file.includes('\0')) throw new DomainError('invalid', 'file must be an absolute path');
    const roots = await this.roots();
    if (!roots.some((root) => isInside(resolve(file), root))) throw new DomainError('invalid', `file ${file} is outside the configured repositories`);
    let dir = dirname(resolve(file));
    let real: string | null = null;
    while (real === null) {
      real = await realpath(dir).catch(() => null);
      if (real === null) dir = dirname(dir);
    }
    const realRoots = await Promise.all(roots.map((r) => realpath(r).catch(() => null)));
    if (!realRoots.some((root) => root !== null && (real === root || isInside(real!, root)))) throw new DomainError('invalid', `file ${file} is outside the configured repositories`);
    if (await lstat(file).then(() => true, () => false)) throw new DomainError('conflict', `file ${file} already exists`);
    return join(real, relative(dir, resolve(file)));
  }
}

function isInside(path: string, root: string): boolean {
  return path.startsWith(root.endsWith(sep) ? root : root + sep);
}
