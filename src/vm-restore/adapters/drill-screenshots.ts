import { Inject, Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HUB_CONFIG, HubConfig } from '../../config/hub-config';
import type { DrillScreenshot } from '../../wire/restore-protocol';
import type { DrillScreenshotRef } from '../restore.events';

const EXTENSION: Record<DrillScreenshot['contentType'], string> = { 'image/png': 'png', 'image/x-portable-pixmap': 'ppm', 'text/plain': 'txt' };
/** A console screenshot (1024×768 PPM is 2.3 MiB) or a serial console's last lines stay far below this. */
const MAX_BYTES = 16 * 1024 * 1024;

/** The console of each drill at its verdict, kept by the hub in its data dir and named, with its SHA-256, by the drill's event. */
@Injectable()
export class DrillScreenshots {
  private readonly dir: string;

  constructor(@Inject(HUB_CONFIG) private readonly config: HubConfig) {
    this.dir = join(config.dataDir, 'drills');
  }

  async save(restoreId: string, shot: DrillScreenshot): Promise<DrillScreenshotRef | null> {
    const data = Buffer.from(shot.data, 'base64');
    if (!EXTENSION[shot.contentType] || data.length === 0 || data.length > MAX_BYTES) return null;
    const file = `drills/${restoreId}.${EXTENSION[shot.contentType]}`;
    await mkdir(this.dir, { recursive: true, mode: 0o750 });
    await writeFile(join(this.config.dataDir, file), data, { mode: 0o640 });
    return { file, contentType: shot.contentType, bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') };
  }

  read(ref: DrillScreenshotRef): Promise<Buffer> {
    return readFile(join(this.config.dataDir, ref.file));
  }
}
