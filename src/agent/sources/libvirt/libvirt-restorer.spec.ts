import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RestoreStartRequest } from '../../../wire/restore-protocol';
import { RestoreJournal } from '../../restore-journal';
import type { LibvirtSource } from './libvirt-source';
import { blockJobBytes, LibvirtRestorer, type RestoreDiskPlan } from './libvirt-restorer';

describe('blockJobBytes', () => {
  it("reads the bytes copied and to copy from virsh blockjob --info --raw (tools/virsh-domain.c's raw format)", () => {
    expect(blockJobBytes(' type=Pull\n bandwidth=0\n cur=268435456\n end=1374389534\n')).toEqual({ cur: 268435456, end: 1374389534 });
  });

  it('reads no progress from the percentage virsh prints without --raw, nor from a disk with no job', () => {
    // what --info --bytes printed: the figure every instant recovery reported as 0 (issue 39, finding 4)
    expect(blockJobBytes('Block Pull: [ 19 %]\n')).toBeNull();
    expect(blockJobBytes('No current block job for vda\n')).toBeNull();
    expect(blockJobBytes('')).toBeNull();
  });
});

/**
 * libvirt faked as a domain whose disks each read from the hub until their pull has been seen running for two polls:
 * what is tested is the order the restorer starts pulls in, not libvirt.
 */
describe('the background copy of an instant recovery', () => {
  function fakeDomain(disks: string[], runningAtStart: string[] = []) {
    const polls = new Map<string, number>(runningAtStart.map((d) => [d, 2]));
    const local = new Set<string>();
    let mostAtOnce = runningAtStart.length;
    const started: string[] = [];
    const xml = () => `<domain><devices>${disks.map((d) => `<disk type='file' device='disk'><source file='/x/${d}'/>${local.has(d) ? '' : "<backingStore type='network'/>"}<target dev='${d}' bus='virtio'/></disk>`).join('')}</devices></domain>`;
    const virsh = async ([command, , disk]: string[]) => {
      if (command === 'dumpxml') return xml();
      if (command === 'blockpull') {
        started.push(disk);
        polls.set(disk, 2);
        mostAtOnce = Math.max(mostAtOnce, polls.size);
        return '';
      }
      if (command === 'blockjob') {
        const left = polls.get(disk);
        if (left === undefined) return '';
        if (left === 0) {
          polls.delete(disk);
          local.add(disk);
          return '';
        }
        polls.set(disk, left - 1);
        return ' type=Pull\n cur=1\n end=2\n';
      }
      return '';
    };
    return { source: { virsh } as unknown as LibvirtSource, started, mostAtOnce: () => mostAtOnce };
  }

  it('pulls one disk at a time (qemu 7.2 segfaulted when two pulls ended together), each disk once, and ends when none reads from the hub', async () => {
    const domain = fakeDomain(['vda', 'vdb', 'vdc']);
    const progress: string[] = [];
    await new LibvirtRestorer(domain.source, { workDir: '/nonexistent', log: () => undefined }).pull('uuid-1', ['vda', 'vdb', 'vdc'], (disk) => progress.push(disk), new AbortController().signal);
    expect(domain.started).toEqual(['vda', 'vdb', 'vdc']);
    expect(domain.mostAtOnce()).toBe(1);
    expect([...new Set(progress)]).toEqual(['vda', 'vdb', 'vdc']);
  }, 30_000);

  it("finishes the copy of a shut-off domain offline: each overlay takes in what it read from its backing, and the domain is defined again without it", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sendense-offline-'));
    try {
      // the point's data as the hub serves it, and an overlay on it holding what the guest wrote before it was shut off
      const backing = join(dir, 'point.raw');
      const overlay = join(dir, 'web-vda.qcow2');
      writeFileSync(backing, Buffer.alloc(4 << 20, 'p'));
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', backing, '-F', 'raw', overlay, String(4 << 20)]);
      execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x67 1M 64k', overlay]);
      const disk = (backingStore: string) => `<domain><devices><disk type='file' device='disk'>\n  <driver name='qemu' type='qcow2'/>\n  <source file='${overlay}'/>${backingStore}\n  <target dev='vda' bus='virtio'/>\n</disk></devices></domain>`;
      const network = "\n  <backingStore type='network' index='1'>\n    <format type='raw'/>\n    <source protocol='nbd' name='vda'>\n      <host transport='unix' socket='/tmp/p/vda.sock'/>\n    </source>\n    <backingStore/>\n  </backingStore>";
      let defined: string | null = null;
      const calls: string[] = [];
      const stalls: (string | null)[] = [];
      const source = {
        virsh: async (args: string[]) => {
          calls.push(args.join(' '));
          if (args[0] === 'domstate') return 'shut off (destroyed)\n';
          if (args[0] === 'blockjob') return '';
          if (args[0] === 'dumpxml') return defined ?? disk(network);
          if (args[0] === 'define') defined = readFileSync(args[1], 'utf8');
          return '';
        },
      } as unknown as LibvirtSource;
      const progress: [string, number, number][] = [];
      await new LibvirtRestorer(source, { workDir: dir, log: () => undefined }).pull('uuid-1', ['vda'], (...p) => progress.push(p), new AbortController().signal, (reason) => stalls.push(reason));
      expect(stalls).toEqual(['the domain is shut off (destroyed): its copy is being finished offline', null]);
      // what qemu-img rebase printed, in bytes of the disk, up to the whole of it and never back (a busy machine may
      // hand its whole output over at once: then the last share alone is reported)
      expect(progress.at(-1)).toEqual(['vda', 4 << 20, 4 << 20]);
      expect(progress.map(([, done]) => done)).toEqual([...progress.map(([, done]) => done)].sort((a, b) => a - b));
      expect(calls.filter((c) => c.startsWith('blockpull'))).toEqual([]);
      expect(defined).toBe(disk(''));
      // standalone, with what the guest wrote and the point's data around it
      expect(JSON.parse(execFileSync('qemu-img', ['info', '--output=json', overlay], { encoding: 'utf8' }))['backing-filename']).toBeUndefined();
      rmSync(backing);
      execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'read -P 0x67 1M 64k', '-c', `read -P 0x70 0 1M`, '-c', `read -P 0x70 ${(1 << 20) + 65536} ${(3 << 20) - 65536}`, overlay]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('resumed after an agent restart, lets the pull still running end before it starts another', async () => {
    const domain = fakeDomain(['vda', 'vdb'], ['vdb']);
    await new LibvirtRestorer(domain.source, { workDir: '/nonexistent', log: () => undefined }).pull('uuid-1', ['vda', 'vdb'], () => undefined, new AbortController().signal);
    expect(domain.started).toEqual(['vda']);
    expect(domain.mostAtOnce()).toBe(1);
  }, 30_000);
});

/**
 * A replace renames the checked files over the domain's own only while the domain is shut off: the copy may take
 * hours, and a domain started meanwhile writes to the disks the renames would put away. libvirt is faked as a domain
 * in the state the test gives; the files are real.
 */
describe('the commit of a replace', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'sendense-replace-commit-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function commit(state: string) {
    const own = join(dir, 'web-vda.qcow2');
    const written = `${own}.sendense-restore-r1`;
    writeFileSync(own, 'the domain\'s own disk');
    writeFileSync(written, 'the restored disk');
    const info = { uuid: 'uuid-1', name: 'web', disks: [{ target: 'vda', type: 'file', file: own }], qemuUser: null, guestAgentChannel: false };
    const virsh = async ([command]: string[]) => (command === 'domstate' ? `${state}\n` : '');
    const source = { virsh, domain: async () => ({ info, running: state === 'running' }) } as unknown as LibvirtSource;
    const journal = await RestoreJournal.create(dir, 'r1');
    const req = { restoreId: 'r1', target: { kind: 'replace', vmId: 'uuid-1' } } as unknown as RestoreStartRequest;
    const disks: RestoreDiskPlan[] = [{ diskId: 'vda', virtualSize: 1, format: 'qcow2', write: written, final: own, owner: { uid: process.getuid!(), gid: process.getgid!(), mode: 0o600 } }];
    const outcome = await new LibvirtRestorer(source, { workDir: dir, log: () => undefined }).commit(req, disks, journal).then(() => 'committed', (e: Error) => `${e.constructor.name}: ${e.message}`);
    return { outcome, own: readFileSync(own, 'utf8'), journal: journal.state.phase };
  }

  it('a domain started while its disks were restored keeps its own disks: the commit is refused before anything is renamed', async () => {
    for (const state of ['running', 'paused']) {
      expect(await commit(state)).toEqual({ outcome: `RestoreConflict: domain web is ${state}: it was started while its disks were restored; its own disks are left as they are (shut it off and restore again)`, own: "the domain's own disk", journal: 'writing' });
    }
  });

  it('a domain still shut off gets the restored disks', async () => {
    expect(await commit('shut off')).toEqual({ outcome: 'committed', own: 'the restored disk', journal: 'committing' });
  });
});
