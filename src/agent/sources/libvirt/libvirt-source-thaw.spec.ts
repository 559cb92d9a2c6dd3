import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LibvirtSource } from './libvirt-source';

/**
 * A guest whose thaw keeps failing (its guest agent hung after the freeze, libvirtd restarting) is an outage: the
 * agent goes on thawing it for as long as it runs, and keeps the marker that makes its next start thaw it. virsh is
 * faked (the guest agent's failure cannot be produced on demand with a real guest); the rest is the agent's own code.
 */
describe('libvirt source: a guest whose thaw failed', () => {
  const uuid = '6b3c5a52-1f4e-4f55-9a77-0d8e52c1a0b1';
  let dir: string;
  // a test that fails midway still ends every source's retries: a loop left running keeps jest from exiting
  let sources: LibvirtSource[] = [];
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'sendense-thaw-'))));
  afterEach(async () => {
    await Promise.all(sources.map((s) => s.closeAll()));
    sources = [];
    rmSync(dir, { recursive: true, force: true });
  });

  function source(thawFailures: number, state: () => string, thawMs = 0) {
    const logs: string[] = [];
    const calls: string[] = [];
    const libvirt = new LibvirtSource({ workDir: dir, thawRetryMs: 50, log: (level, message) => logs.push(`${level}: ${message}`) });
    sources.push(libvirt);
    let failures = thawFailures;
    libvirt.virsh = async (args: string[]) => {
      calls.push(args.join(' '));
      if (args[0] === 'domfsthaw') {
        await new Promise((r) => setTimeout(r, thawMs));
        if (failures-- > 0) throw new Error('error: Guest agent is not responding: Guest agent not available for now');
        return 'Thawed 1 filesystem(s)\n';
      }
      if (args[0] === 'domstate') return `${state()}\n`;
      return '';
    };
    // the guest's agent answers again: every later thaw succeeds
    const release = () => (failures = 0);
    return { libvirt, logs, calls, release };
  }
  const marker = () => join(dir, `frozen-${uuid}`);
  const until = async (what: () => boolean) => {
    for (let i = 0; i < 200 && !what(); i++) await new Promise((r) => setTimeout(r, 25));
    return what();
  };

  it('at start, a thaw that fails every try is tried again until the guest thaws; the marker stays until then', async () => {
    writeFileSync(marker(), 'frozen by an agent killed mid-backup\n');
    // the guest stays hung until the test says otherwise: how soon the retries run does not decide what is seen
    const { libvirt, logs, calls, release } = source(Infinity, () => 'running');
    const thaws = () => calls.filter((c) => c === `domfsthaw ${uuid}`).length;
    const cleaned = await libvirt.cleanupLeftovers();
    expect(cleaned.thawed).toEqual([]);
    expect(existsSync(marker())).toBe(true);
    expect(logs).toContainEqual(expect.stringMatching(/could not be thawed: it may still be frozen \(tried again every 0.05 s until it thaws\)/));
    // five tries at start, then again every 0.05 s: three retries, all failed, and the marker still there
    expect(await until(() => thaws() >= 8)).toBe(true);
    expect(existsSync(marker())).toBe(true);
    const beforeRelease = thaws();
    release();
    expect(await until(() => !existsSync(marker()))).toBe(true);
    // the first try that ends after the guest answers again thaws it (one under way may be it), and no try follows
    await new Promise((r) => setTimeout(r, 200));
    expect(thaws()).toBeLessThanOrEqual(beforeRelease + 1);
    expect(logs.at(-1)).toBe(`warn: the guest of ${uuid} is thawed, after its thaw had failed`);
    await libvirt.closeAll();
  });

  it('a backup that starts while an earlier thaw is still being retried, whose own freeze and thaw both fail, goes on thawing and keeps the marker', async () => {
    writeFileSync(marker(), 'left by a backup whose thaw failed\n');
    const { libvirt, calls, release } = source(Infinity, () => 'running');
    const thaws = () => calls.filter((c) => c === `domfsthaw ${uuid}`).length;
    await libvirt.cleanupLeftovers();
    // the next backup's line: the freeze fails (the guest agent still hung: the guest may well be frozen still), the
    // job begins, the thaw fails
    const hung = () => new Error('error: Guest agent is not responding: Guest agent not available for now');
    (libvirt as unknown as { shell: object }).shell = { sequence: async () => [hung(), null, hung()], close: async () => undefined };
    const frozen = (libvirt as unknown as { frozen: (info: object, begin: string[]) => Promise<unknown> }).frozen.bind(libvirt);
    await expect(frozen({ uuid, name: 'web', disks: [], qemuUser: null, guestAgentChannel: true }, ['backup-begin', uuid])).rejects.toThrow(/could not be thawed: it may still be frozen/);
    expect(existsSync(marker())).toBe(true);
    const before = thaws();
    expect(await until(() => thaws() >= before + 2)).toBe(true);
    release();
    expect(await until(() => !existsSync(marker()))).toBe(true);
  });

  it('stops once the domain no longer runs, and an agent that stops first leaves the marker for its next start', async () => {
    writeFileSync(marker(), 'x\n');
    let state = 'running';
    const { libvirt } = source(Infinity, () => state);
    await libvirt.cleanupLeftovers();
    await new Promise((r) => setTimeout(r, 200));
    expect(existsSync(marker())).toBe(true);
    state = 'shut off';
    expect(await until(() => !existsSync(marker()))).toBe(true);

    // stopped while a retry is under way (each try lasts 0.1 s): the stop waits for it, and nothing of it runs after;
    // a loaded machine may poll past the sixth try
    writeFileSync(marker(), 'x\n');
    const second = source(Infinity, () => 'running', 100);
    await second.libvirt.cleanupLeftovers();
    const thaws = () => second.calls.filter((c) => c.startsWith('domfsthaw')).length;
    expect(await until(() => thaws() >= 6)).toBe(true);
    await second.libvirt.closeAll();
    const tries = second.calls.length;
    expect(second.calls.at(-1)).toBe(`domstate ${uuid}`);
    await new Promise((r) => setTimeout(r, 300));
    expect(second.calls.length).toBe(tries);
    expect(existsSync(marker())).toBe(true);
  });
});
