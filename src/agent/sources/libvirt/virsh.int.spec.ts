import { domainsAtCollection, ensureLibvirt, LibvirtDaemons } from '../../../../test/fixtures/libvirt/libvirt-guest';
import { Virsh } from './virsh';

/** Real virsh against a real libvirtd: answers, failures, quoting, timeouts, parallel callers and a restarted libvirtd. */
describe('Virsh: commands in long-lived virsh shells', () => {
  let daemons: LibvirtDaemons;
  const virsh = new Virsh('virsh', 'qemu:///system');

  beforeAll(async () => {
    const libvirt = await ensureLibvirt();
    // .ci/run installs libvirt: a machine without it fails here rather than passing without asserting
    if (!libvirt.ok) throw new Error(`libvirt is needed: ${libvirt.reason}`);
    daemons = libvirt;
  }, 120_000);
  afterAll(async () => {
    virsh.close();
    await daemons?.stop();
  });

  it("returns each command's output, with arguments quoted as given", async () => {
    expect(await virsh.run(['echo', 'plain'], 10_000)).toBe('plain\n');
    const odd = `it's "quoted" \\ with  spaces; and a ; separator`;
    expect(await virsh.run(['echo', odd], 10_000)).toBe(`${odd}\n`);
    expect(await virsh.run(['uri'], 10_000)).toBe('qemu:///system\n');
    // longer than a terminal line: virsh's line editor redraws its echo of it
    const long = `/var/lib/sendense/agent/job-${'0123456789'.repeat(20)}/backup.xml`;
    expect(await virsh.run(['echo', long, long], 10_000)).toBe(`${long} ${long}\n`);
  });

  it('fails a command with what virsh said, and the shell goes on', async () => {
    await expect(virsh.run(['domstate', 'sendense-no-such-domain'], 10_000)).rejects.toThrow(/^virsh domstate: failed to get domain 'sendense-no-such-domain'/);
    expect(await virsh.run(['echo', 'after'], 10_000)).toBe('after\n');
  });

  it('runs a sequence on one line, each command whatever the one before did, each failure in its place', async () => {
    const results = await virsh.sequence([['echo', 'first ; not a command'], ['domstate', 'sendense-no-such-domain'], ['echo', 'last']], 10_000);
    expect(results[0]).toBeNull();
    expect(results[1]?.message).toMatch(/^virsh domstate: failed to get domain 'sendense-no-such-domain'/);
    expect(results[2]).toBeNull();
    expect(await virsh.run(['echo', 'after'], 10_000)).toBe('after\n');
  });

  it('gives parallel callers their own answers', async () => {
    const words = Array.from({ length: 20 }, (_, i) => `word-${i}`);
    expect(await Promise.all(words.map((w) => virsh.run(['echo', w], 10_000)))).toEqual(words.map((w) => `${w}\n`));
    // closed (as at agent shutdown), a later command gets a new shell
    virsh.close();
    expect(await Promise.all(words.map((w) => virsh.run(['echo', w], 10_000)))).toEqual(words.map((w) => `${w}\n`));
  });

  it('kills a shell that does not answer in time; the next command gets a new one', async () => {
    // waits 5 s for domain events: killed mid-command, as one stuck on a libvirtd that does not answer
    const started = Date.now();
    await expect(virsh.run(['event', '--all', '--timeout', '5'], 300)).rejects.toThrow(/^virsh event: no answer within 300 ms/);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(await virsh.run(['echo', 'alive'], 10_000)).toBe('alive\n');
  });

  // a restart would stop libvirtd under someone else's domains: skipped (and counted so) when libvirt lists any
  const foreignDomains = domainsAtCollection();
  if (foreignDomains.length) process.stdout.write(`libvirtd restart: skipped, libvirtd also runs ${foreignDomains.join(', ')}\n`);
  (foreignDomains.length ? it.skip : it)('answers again after libvirtd restarted under its shells', async () => {
    expect(await virsh.run(['uri'], 10_000)).toBe('qemu:///system\n');
    await daemons.restartLibvirtd([]);
    let answer: string | Error = new Error('never tried');
    for (let i = 0; i < 20; i++) {
      answer = await virsh.run(['uri'], 10_000).catch((e: Error) => e);
      if (typeof answer === 'string') break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(answer).toBe('qemu:///system\n');
  });
});
