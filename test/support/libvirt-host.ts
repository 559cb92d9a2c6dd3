import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureLibvirt, GuestDomain, virsh } from '../fixtures/libvirt/libvirt-guest';
import { LibvirtLab } from './libvirt-lab';

/**
 * The real libvirt host a test file works against, around its LibvirtLab: libvirtd (stopped again only if this
 * file started it), a scratch dir for guest disks and restored ones, and the domains the test defines. `close`
 * takes them down in the order that frees each before what holds it.
 */
export class LibvirtHost {
  /** The scratch dir: empty until `open`. */
  dir = '';
  /** Domains the test defined or restored by name: destroyed and undefined (nvram too) on close. */
  readonly domains: string[] = [];
  private stopLibvirt: (() => Promise<void>) | undefined;

  constructor(private readonly prefix: string) {}

  /** Where restores write their disks: `restored/` in the scratch dir, made by `open({ storage: true })`. */
  get storage(): string {
    return join(this.dir, 'restored');
  }

  async open(opts: { storage?: boolean } = {}): Promise<void> {
    const libvirt = await ensureLibvirt();
    // .ci/run installs libvirt: a machine without it fails here rather than passing without asserting
    if (!libvirt.ok) throw new Error(`libvirt is needed: ${libvirt.reason}`);
    this.stopLibvirt = libvirt.stop;
    this.dir = mkdtempSync(join(tmpdir(), this.prefix));
    // libvirt runs qemu as its own user: it has to reach the disks in here
    chmodSync(this.dir, 0o755);
    if (opts.storage) mkdirSync(this.storage, { mode: 0o755 });
  }

  /**
   * The test's domains and guest go first (their qemu holds disks in the scratch dir), then the lab's hub and
   * agent, then `beforeRemovingDir` (mounts inside the scratch dir), the dir itself, and libvirtd last.
   */
  async close(lab: LibvirtLab, also: { guest?: GuestDomain; beforeRemovingDir?: () => Promise<void> } = {}): Promise<void> {
    for (const name of this.domains) {
      await virsh('destroy', name).catch(() => undefined);
      // a restored domain that was backed up holds checkpoints, and libvirt refuses to undefine it without this flag
      await virsh('undefine', name, '--nvram', '--checkpoints-metadata').catch(() => virsh('undefine', name, '--checkpoints-metadata')).catch(() => undefined);
    }
    await also.guest?.destroy();
    if (lab.hub) await lab.close();
    await also.beforeRemovingDir?.();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    await this.stopLibvirt?.();
  }
}
