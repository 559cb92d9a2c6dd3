import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LibvirtSource } from './libvirt-source';

/**
 * A backup job whose end libvirtd did not answer within libvirtWaitMs (libvirtd restarting for minutes) is not left
 * open on the domain until the agent's next start: it is tried again in the background, and ended once libvirtd
 * answers. virsh is faked (libvirtd away for longer than the wait cannot be had on demand beside other domains); the
 * rest is the agent's own code.
 */
describe('libvirt source: a backup job libvirtd did not let end in time', () => {
  const uuid = '6b3c5a52-1f4e-4f55-9a77-0d8e52c1a0b1';
  let dir: string;
  let sources: LibvirtSource[] = [];
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'sendense-end-job-'))));
  afterEach(async () => {
    await Promise.all(sources.map((s) => s.closeAll()));
    sources = [];
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * A domain running a backup job whose socket is `socket`; libvirtd goes away right after the agent found the job
   * (it answers `list` and `backup-dumpxml` once), until `back()`.
   */
  function domain(socket: () => string) {
    const logs: string[] = [];
    const calls: string[] = [];
    const libvirt = new LibvirtSource({ workDir: dir, libvirtWaitMs: 100, endRetryMs: 50, log: (level, message) => logs.push(`${level}: ${message}`) });
    sources.push(libvirt);
    let away = false;
    let jobOpen = true;
    libvirt.virsh = async (args: string[]) => {
      calls.push(`${away ? 'refused: ' : ''}${args.join(' ')}`);
      if (away) throw new Error('error: failed to connect to the hypervisor');
      switch (args[0]) {
        case 'list':
          return `${uuid}\n`;
        case 'domjobinfo':
          return jobOpen ? 'Job type:         Unbounded\nOperation:        Backup\n' : 'Job type:         None\n';
        case 'backup-dumpxml':
          // once the leftover job is found, libvirtd goes away before it is ended
          if (calls.filter((c) => c.startsWith('backup-dumpxml')).length === 1) away = true;
          return `<domainbackup mode='pull'>\n  <server transport='unix' socket='${socket()}'/>\n</domainbackup>\n`;
        case 'domjobabort':
          jobOpen = false;
          return '';
        case 'domstate':
          return 'running\n';
        default:
          return '';
      }
    };
    return { libvirt, logs, calls, back: () => (away = false), jobOpen: () => jobOpen };
  }
  const until = async (what: () => boolean) => {
    for (let i = 0; i < 200 && !what(); i++) await new Promise((r) => setTimeout(r, 25));
    return what();
  };

  it('is ended in the background once libvirtd answers again, without waiting for the next agent start', async () => {
    const jobDir = join(dir, 'job-1');
    mkdirSync(jobDir);
    const { libvirt, logs, calls, back, jobOpen } = domain(() => join(jobDir, 'nbd.sock'));
    await libvirt.cleanupLeftovers();
    expect(logs).toContainEqual(expect.stringMatching(/^error: the backup job of 6b3c5a52-1f4e-4f55-9a77-0d8e52c1a0b1 could not be ended: libvirt did not answer \(error: failed to connect to the hypervisor\); trying again every 0.05 s, and at the next agent start$/));
    expect(jobOpen()).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    back();
    expect(await until(() => !jobOpen())).toBe(true);
    expect(await until(() => logs.includes(`warn: the backup job of ${uuid} left open while libvirt did not answer is ended`))).toBe(true);
    // ended once, and tried no more
    const aborts = calls.filter((c) => c === `domjobabort ${uuid}`).length;
    await new Promise((r) => setTimeout(r, 200));
    expect(calls.filter((c) => c === `domjobabort ${uuid}`)).toHaveLength(aborts);
    expect(aborts).toBe(1);
  });

  it("leaves alone a backup job that another backup began meanwhile: only the job whose socket lies in its own directory is ended", async () => {
    const jobDir = join(dir, 'job-1');
    mkdirSync(jobDir);
    let socket = join(jobDir, 'nbd.sock');
    const { libvirt, logs, calls, back, jobOpen } = domain(() => socket);
    await libvirt.cleanupLeftovers();
    // by the time libvirtd answers, the job on the domain is a new backup's
    socket = join(dir, 'job-2', 'nbd.sock');
    back();
    expect(await until(() => logs.some((l) => l.includes('left open while libvirt did not answer is ended')))).toBe(true);
    expect(jobOpen()).toBe(true);
    expect(calls.filter((c) => c.startsWith('domjobabort'))).toEqual([]);
  });

  it('stops trying when the agent stops: the next start ends the job', async () => {
    mkdirSync(join(dir, 'job-1'));
    const { libvirt, calls } = domain(() => join(dir, 'job-1', 'nbd.sock'));
    await libvirt.cleanupLeftovers();
    // tried in the background while libvirtd stays away
    const refused = () => calls.filter((c) => c.startsWith('refused: ')).length;
    const atStart = refused();
    expect(await until(() => refused() >= atStart + 2)).toBe(true);
    await libvirt.closeAll();
    await new Promise((r) => setTimeout(r, 100));
    const before = calls.length;
    await new Promise((r) => setTimeout(r, 300));
    expect(calls).toHaveLength(before);
  });
});
