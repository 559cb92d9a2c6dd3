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
