import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LibvirtSource } from './libvirt-source';
import { LibvirtRestorer } from './libvirt-restorer';

/**
 * Why an instant recovery's background copy stopped, read from a real filesystem (a 128 MiB tmpfs holding the
 * overlay and another writer's file). libvirt is faked (a domain whose pull job ends at once every time it is
 * started, until there is room): what is tested is the decision, not libvirt.
 */
describe('the background copy of an instant recovery, stopping at once on a nearly full filesystem', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-pull-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=128m', 'tmpfs', dir]);
  });
  afterAll(() => {
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('stalls with the reason on the second stop in a row when under 64 MiB are free, not after ten restarts, and goes on once space is freed', async () => {
    const overlay = join(dir, 'vda.overlay.qcow2');
    writeFileSync(overlay, '');
    // another writer leaves 28 MiB
    writeFileSync(join(dir, 'filler'), Buffer.alloc(100 * 1024 * 1024));
    const calls: string[] = [];
    const stalls: (string | null)[] = [];
    const disk = (backing: string) => `<domain><devices><disk type='file' device='disk'><source file='${overlay}'/>${backing}<target dev='vda' bus='virtio'/></disk></devices></domain>`;
    const answers: Record<string, string> = { dumpxml: disk("<backingStore type='network'/>"), blockjob: '', blockpull: '', domblkerror: 'No errors found\n', domstate: 'running (booted)\n' };
    const source = {
      virsh: async (args: string[]) => {
        calls.push(args[0]);
        if (args[0] === 'resume') answers.domstate = 'running (unpaused)\n';
        // with room, a pull copies the disk whole at once
        if (args[0] === 'blockpull' && !existsSync(join(dir, 'filler'))) answers.dumpxml = disk('');
        return answers[args[0]] ?? '';
      },
    } as unknown as LibvirtSource;
    const restorer = new LibvirtRestorer(source, { workDir: dir, log: () => undefined });
    const pulled = restorer.pull('uuid-1', ['vda'], () => undefined, new AbortController().signal, (reason) => stalls.push(reason));
    while (stalls.filter((r) => r !== null).length < 1) await new Promise((r) => setTimeout(r, 50));
    // meanwhile the guest writes into the full filesystem and qemu pauses it: a consequence, not a reason of its own
    answers.domblkerror = 'vda: no space\n';
    answers.domstate = 'paused (I/O error)\n';
    while (stalls.filter((r) => r !== null).length < 2) await new Promise((r) => setTimeout(r, 50));
    // started, stopped once (started again: a stop with 28 MiB free may be the hub's), stopped again: the reason, said again at the next check
    expect(calls.filter((c) => c === 'blockpull')).toHaveLength(2);
    const reason = /^the copy of vda stopped: no space left on the filesystem of .*vda\.overlay\.qcow2 \(\d+ bytes free\)$/;
    expect(stalls.filter((r) => r !== null)).toEqual([expect.stringMatching(reason), expect.stringMatching(reason)]);
    expect(calls).not.toContain('resume');
    // the operator frees space: the guest runs again, the copy goes on and ends
    rmSync(join(dir, 'filler'));
    answers.domblkerror = 'No errors found\n';
    await pulled;
    expect(calls.filter((c) => c === 'resume')).toHaveLength(1);
    expect(calls.filter((c) => c === 'blockpull')).toHaveLength(3);
    expect(stalls.at(-1)).toBeNull();
  }, 60_000);
});
