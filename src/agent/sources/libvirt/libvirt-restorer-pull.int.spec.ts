import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LibvirtSource } from './libvirt-source';
import { LibvirtRestorer } from './libvirt-restorer';

/**
 * Why an instant recovery's background copy stopped, read from a real filesystem (a 32 MiB tmpfs holding the
 * overlay). libvirt is faked (a domain whose pull job ends at once every time it is started): what is tested is the
 * decision, not libvirt.
 */
describe('the background copy of an instant recovery, stopping at once on a nearly full filesystem', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-pull-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', dir]);
  });
  afterAll(() => {
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('fails with the reason on the second stop in a row when under 64 MiB are free, not after ten restarts', async () => {
    const overlay = join(dir, 'vda.overlay.qcow2');
    writeFileSync(overlay, '');
    const calls: string[] = [];
    const xml = `<domain><devices><disk type='file' device='disk'><source file='${overlay}'/><backingStore type='network'/><target dev='vda' bus='virtio'/></disk></devices></domain>`;
    const answers: Record<string, string> = { dumpxml: xml, blockjob: '', blockpull: '', domblkerror: 'No errors found\n', domstate: 'running (booted)\n' };
    const source = { virsh: async (args: string[]) => (calls.push(args[0]), answers[args[0]] ?? '') } as unknown as LibvirtSource;
    const restorer = new LibvirtRestorer(source, { workDir: dir, log: () => undefined });
    await expect(restorer.pull('uuid-1', ['vda'], () => undefined, new AbortController().signal)).rejects.toThrow(/^the copy of vda stopped: no space left on the filesystem of .*vda\.overlay\.qcow2 \(\d+ bytes free\)$/);
    // started, stopped once (started again: a stop with 32 MiB free may be the hub's), stopped again: the reason
    expect(calls.filter((c) => c === 'blockpull')).toHaveLength(2);
  }, 30_000);
});
