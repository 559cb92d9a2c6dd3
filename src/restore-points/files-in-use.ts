import { Injectable } from '@nestjs/common';

export type FilesInUseSource = (files: string[]) => Promise<string | null>;

/**
 * Features that hold restore-point files open (NBD exports, restore mounts)
 * register a check here; a delete or merge asks all of them first.
 */
@Injectable()
export class FilesInUse {
  private readonly sources: FilesInUseSource[] = [];

  register(source: FilesInUseSource): void {
    this.sources.push(source);
  }

  /** Why these files cannot be changed now, or null. */
  async blocker(files: string[]): Promise<string | null> {
    for (const source of this.sources) {
      const reason = await source(files);
      if (reason) return reason;
    }
    return null;
  }
}

/**
 * The files one kind of reader in this process has open (real paths, counted: two readers may share one),
 * registered with FilesInUse as `why`: a delete or merge of any of them is refused while a reader holds it.
 */
export class HeldFiles {
  private readonly held = new Map<string, number>();

  constructor(filesInUse: FilesInUse, why: string) {
    filesInUse.register(async (files) => (files.some((f) => this.held.has(f)) ? why : null));
  }

  async during<T>(files: string[], work: () => Promise<T>): Promise<T> {
    for (const f of files) this.held.set(f, (this.held.get(f) ?? 0) + 1);
    try {
      return await work();
    } finally {
      for (const f of files) {
        const n = this.held.get(f)! - 1;
        if (n > 0) this.held.set(f, n);
        else this.held.delete(f);
      }
    }
  }
}
