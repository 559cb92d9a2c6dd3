import execa from 'execa';
import { isLockMessage, QemuImgError } from './errors';

export interface BitmapInfo {
  name: string;
  granularity: number;
  /** Raw qcow2 flags as qemu-img prints them: `auto` (enabled: records writes), `in-use`. */
  flags: string[];
  /** The `auto` flag: qemu loads the bitmap enabled, so it records writes. */
  enabled: boolean;
  /**
   * The `in-use` flag. On an image nobody has open this means a writer
   * opened it and died without storing its bitmaps (SIGKILL, crash, power
   * loss): qemu refuses such a bitmap as inconsistent. While a writer runs,
   * every bitmap shows in-use, which is why inspection for bitmap decisions
   * is done without `-U` (it fails on a locked image instead).
   */
  inUse: boolean;
}

export interface ImageInfo {
  format: string;
  virtualSize: number;
  backingFile?: string;
  encrypted: boolean;
  /** qcow2 only; empty for other formats. */
  bitmaps: BitmapInfo[];
}

interface RawInfo {
  format?: unknown;
  'virtual-size'?: unknown;
  'backing-filename'?: unknown;
  'full-backing-filename'?: unknown;
  encrypted?: unknown;
  'format-specific'?: { type?: string; data?: { bitmaps?: Array<{ name?: unknown; granularity?: unknown; flags?: unknown }> } };
}

/** Parses `qemu-img info --output=json` (one image, not --backing-chain). */
export function parseImageInfo(json: string): ImageInfo {
  const raw = JSON.parse(json) as RawInfo;
  if (typeof raw.format !== 'string' || typeof raw['virtual-size'] !== 'number') throw new Error(`unexpected qemu-img info output: ${json.slice(0, 200)}`);
  const bitmaps = (raw['format-specific']?.type === 'qcow2' ? (raw['format-specific'].data?.bitmaps ?? []) : []).map((b) => {
    const flags = Array.isArray(b.flags) ? b.flags.map(String) : [];
    return { name: String(b.name), granularity: Number(b.granularity), flags, enabled: flags.includes('auto'), inUse: flags.includes('in-use') };
  });
  const backing = raw['full-backing-filename'] ?? raw['backing-filename'];
  return {
    format: raw.format,
    virtualSize: raw['virtual-size'],
    ...(typeof backing === 'string' ? { backingFile: backing } : {}),
    encrypted: raw.encrypted === true,
    bitmaps,
  };
}

export interface QemuImgOptions {
  binary?: string;
  timeoutMs?: number;
}

/** Thin runner for the qemu-img subcommands this driver needs. Every failure is a QemuImgError (with `.locked`). */
export class QemuImg {
  private readonly binary: string;
  private readonly timeoutMs: number;

  constructor(opts: QemuImgOptions = {}) {
    this.binary = opts.binary ?? 'qemu-img';
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  /**
   * `shareLocks: true` adds `-U`: works on an image a running VM holds (for
   * the inventory), but bitmap flags read that way are not trustworthy.
   * Without it qemu-img fails with a lock error while a writer has the image.
   */
  async info(path: string, opts: { format?: string; shareLocks: boolean }): Promise<ImageInfo> {
    const args = ['info', '--output=json', ...(opts.shareLocks ? ['-U'] : []), ...(opts.format ? ['-f', opts.format] : []), path];
    return parseImageInfo(await this.run(args));
  }

  async addBitmap(path: string, name: string, granularity?: number): Promise<void> {
    await this.run(['bitmap', '--add', '--enable', ...(granularity ? ['-g', String(granularity)] : []), '-f', 'qcow2', path, name]);
  }

  async removeBitmap(path: string, name: string): Promise<void> {
    await this.run(['bitmap', '--remove', '-f', 'qcow2', path, name]);
  }

  /**
   * Merges bitmap `source` into bitmap `target` of the same image. In 7.2,
   * `-b FILE` names another image as the source; naming the same file with
   * `-b` opens it a second time and fails on qemu's own image lock, so for
   * one image the source is given without `-b`.
   */
  async mergeBitmap(path: string, source: string, target: string): Promise<void> {
    await this.run(['bitmap', '--merge', source, '-f', 'qcow2', path, target]);
  }

  private async run(args: string[]): Promise<string> {
    const result = await execa(this.binary, args, { reject: false, timeout: this.timeoutMs, stdin: 'ignore', env: { LC_ALL: 'C' } });
    if (result.exitCode !== 0 || result.timedOut) {
      const stderr = result.timedOut ? `timed out after ${this.timeoutMs} ms. ${result.stderr}` : result.stderr || result.stdout || (result as { shortMessage?: string }).shortMessage || '';
      throw new QemuImgError(args, result.exitCode ?? undefined, stderr, isLockMessage(result.stderr));
    }
    return result.stdout;
  }
}
