import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RestoreReport, RestoreStartRequest } from '../wire/restore-protocol';
import { HubAnswerError } from './hub-client';
import { RestoreJournal } from './restore-journal';
import { type RestoreHost, RestoreRunner } from './restore-runner';

/**
 * The end of an instant recovery, with the hypervisor faked: once its copy is done the domain reads nothing from the
 * hub and holds the only copy of what its guest wrote since it booted, so nothing that goes wrong after that (a virsh
 * call that fails, a hub that cannot be told, or refuses the report) may undo it: the domain and its disks stay.
 */

jest.setTimeout(30_000);

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sendense-instant-end-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const request: RestoreStartRequest = {
  restoreId: 'ir-1',
  correlationId: 'corr-ir-1',
  causationId: 'cause-ir-1',
  restorePointId: 'rp-1',
  vmId: 'vm-1',
  mode: 'instant',
  target: { kind: 'new-domain', name: 'web-1', storageDir: null, start: true },
  configuration: null,
  definition: { memoryMiB: 64, vcpus: 1 },
  disks: [{ diskId: 'vda', virtualSize: 1 << 20, digests: false, nbd: { port: 1, exportName: 'vda', psk: { identity: 'x', key: '00'.repeat(32) } } }],
};

/** A hypervisor whose domain boots and pulls at once; `fail` names the step that throws. */
function fakeHost(fail: { release?: boolean; settle?: boolean; journalAfterPull?: boolean } = {}, stalls: (string | null)[] = []) {
  const calls: string[] = [];
  const host: RestoreHost = {
    plan: async () => [{ diskId: 'vda', virtualSize: 1 << 20, format: 'qcow2', write: join(dir, 'web-1-vda.qcow2'), final: join(dir, 'web-1-vda.qcow2'), owner: null }],
    commit: () => Promise.reject(new Error('not an instant step')),
    drill: () => Promise.reject(new Error('not an instant step')),
    startInstant: async (_req, plans, journal) => {
      calls.push('startInstant');
      await journal.record({ files: plans.map((p) => p.final), domainUuid: 'uuid-1' });
      return { name: 'web-1', uuid: 'uuid-1', proxyDir: join(dir, 'proxies') };
    },
    pull: async (_uuid, _disks, _progress, _signal, onStall) => {
      calls.push('pull');
      // the copy's checks, each a moment apart, saying why it waits
      for (const reason of stalls) {
        onStall!(reason);
        await new Promise((r) => setTimeout(r, 30));
      }
      // the journal's next write fails (its filesystem full, say): where it writes first is taken
      if (fail.journalAfterPull) mkdirSync(join(dir, `restore-${request.restoreId}.json.tmp`));
    },
    releaseInstant: async () => {
      calls.push('releaseInstant');
      if (fail.release) throw new Error('virsh: the proxies could not be stopped');
    },
    settleInstant: async () => {
      calls.push('settleInstant');
      if (fail.settle) throw new Error('virsh: failed to connect to the hypervisor');
      return true;
    },
    undo: async () => {
      calls.push('undo');
      return ['undefined domain uuid-1'];
    },
  };
  return { host, calls };
}

/** A hub that answers the reports with `answer(report, n)` (n: how often that type was sent); `ended` resolves at the last word taken. */
function fakeHub(answer: (report: RestoreReport, n: number) => Error | null = () => null) {
  const taken: RestoreReport[] = [];
  const tries = new Map<string, number>();
  let end!: () => void;
  const ended = new Promise<void>((resolve) => (end = resolve));
  const report = async (_restore: unknown, r: RestoreReport) => {
    const n = (tries.get(r.type) ?? 0) + 1;
    tries.set(r.type, n);
    const error = answer(r, n);
    if (r.type === 'finished' || r.type === 'failed') setImmediate(end);
    if (error) throw error;
    taken.push(r);
  };
  return { report, taken, tries, ended };
}

function runner(host: RestoreHost, report: ReturnType<typeof fakeHub>['report'], logs: string[] = []): RestoreRunner {
  return new RestoreRunner({
    host,
    workDir: dir,
    hubHost: '127.0.0.1',
    connectSource: () => Promise.reject(new Error('not reached')),
    fetchDigests: () => Promise.reject(new Error('not reached')),
    report,
    log: (level, message) => void logs.push(`${level}: ${message}`),
  });
}

const journals = () => readdirSync(dir).filter((name) => name.startsWith('restore-'));
const until = async (done: () => boolean) => {
  for (const deadline = Date.now() + 20_000; !done(); ) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('the end of an instant recovery never undoes a domain whose copy is done', () => {
  it.each<[string, { release?: boolean; settle?: boolean }]>([
    ['stopping its proxies', { release: true }],
    ['checking that it runs', { settle: true }],
  ])('a failure %s after the copy keeps the domain and its disks, and the hub still hears that it is local', async (_step, fail) => {
    const { host, calls } = fakeHost(fail);
    const hub = fakeHub();
    const logs: string[] = [];
    const restores = runner(host, hub.report, logs);
    restores.start(request);
    await hub.ended;
    await until(() => !restores.isRunning(request.restoreId));
    expect(calls).not.toContain('undo');
    expect(calls).toEqual(['startInstant', 'pull', 'releaseInstant', 'settleInstant']);
    // a domain whose start could not be confirmed is reported as not known to run, never as failed
    expect(hub.taken.at(-1)).toEqual({ type: 'finished', domain: { name: 'web-1', uuid: 'uuid-1', started: !fail.settle } });
    expect(logs.some((l) => l.startsWith('error: ') && l.includes('instant recovery ir-1'))).toBe(true);
    expect(journals()).toEqual([]);
  });

  it('a copy that stalls waits with the domain kept: the hub hears the reason once it takes it (said again at the next check) and hears when the copy goes on', async () => {
    const reason = 'the copy of vda stopped: no space left on the filesystem of /x/web-1-vda.qcow2 (1048576 bytes free)';
    const { host, calls } = fakeHost({}, [reason, reason, reason, null]);
    // the hub's API busy as the stall is first said
    const hub = fakeHub((r, n) => (r.type === 'copy-stalled' && n === 1 ? new HubAnswerError(503, 'hub answered 503') : null));
    const logs: string[] = [];
    const restores = runner(host, hub.report, logs);
    restores.start(request);
    await hub.ended;
    await until(() => !restores.isRunning(request.restoreId));
    expect(calls).toEqual(['startInstant', 'pull', 'releaseInstant', 'settleInstant']);
    expect(hub.tries.get('copy-stalled')).toBe(3);
    expect(hub.taken.filter((r) => r.type === 'copy-stalled')).toEqual([{ type: 'copy-stalled', reason }, { type: 'copy-stalled', reason: null }]);
    expect(hub.taken.at(-1)).toEqual({ type: 'finished', domain: { name: 'web-1', uuid: 'uuid-1', started: true } });
    expect(logs).toContain(`warn: instant recovery ir-1: ${reason}; its domain web-1 is kept until the copy is done (cancel the restore to give it up)`);
  });

  it('a hub that cannot take the report that the domain runs for a moment is told again: the just booted domain is not undone', async () => {
    const { host, calls } = fakeHost();
    const hub = fakeHub((r, n) => (r.type === 'instant-running' && n <= 2 ? new HubAnswerError(503, 'hub answered 503') : null));
    const restores = runner(host, hub.report);
    restores.start(request);
    await hub.ended;
    await until(() => !restores.isRunning(request.restoreId));
    expect(hub.tries.get('instant-running')).toBe(3);
    expect(calls).toEqual(['startInstant', 'pull', 'releaseInstant', 'settleInstant']);
    expect(hub.taken.at(-1)).toEqual({ type: 'finished', domain: { name: 'web-1', uuid: 'uuid-1', started: true } });
  });

  it('a journal that cannot record the copy done (its filesystem full) does not make the domain undone', async () => {
    const { host, calls } = fakeHost({ journalAfterPull: true });
    const hub = fakeHub();
    const restores = runner(host, hub.report);
    restores.start(request);
    await hub.ended;
    await until(() => !restores.isRunning(request.restoreId));
    expect(calls).toEqual(['startInstant', 'pull', 'releaseInstant', 'settleInstant']);
    expect(hub.taken.at(-1)).toEqual({ type: 'finished', domain: { name: 'web-1', uuid: 'uuid-1', started: true } });
  });

  it('a hub that cannot take the last word for a while is told again until it does: the domain is never undone meanwhile', async () => {
    const { host, calls } = fakeHost();
    // the hub's API away (a restart): two tries refused with 503, the third taken
    const hub = fakeHub((r, n) => (r.type === 'finished' && n <= 2 ? new HubAnswerError(503, 'hub answered 503') : null));
    const restores = runner(host, hub.report);
    restores.start(request);
    await until(() => hub.taken.some((r) => r.type === 'finished'));
    await until(() => !restores.isRunning(request.restoreId));
    expect(hub.tries.get('finished')).toBe(3);
    expect(calls).not.toContain('undo');
    expect(journals()).toEqual([]);
  });

  it('a hub that refuses the last word (a 4xx: its final answer) is not asked again, and the domain stays', async () => {
    const { host, calls } = fakeHost();
    const hub = fakeHub((r) => (r.type === 'finished' ? new HubAnswerError(404, 'hub answered 404: restore ir-1 does not exist') : null));
    const logs: string[] = [];
    const restores = runner(host, hub.report, logs);
    restores.start(request);
    await until(() => !restores.isRunning(request.restoreId));
    expect(hub.tries.get('finished')).toBe(1);
    expect(calls).not.toContain('undo');
    expect(logs.some((l) => l.includes('404') && l.includes('ir-1'))).toBe(true);
    expect(journals()).toEqual([]);
  });

  it('an agent stopped while the hub cannot be told stops at once and keeps the journal; the next agent tells the hub without copying or undoing anything', async () => {
    const { host, calls } = fakeHost();
    let hubAway = true;
    const hub = fakeHub((r) => (r.type === 'finished' && hubAway ? new HubAnswerError(503, 'hub answered 503') : null));
    const first = runner(host, hub.report);
    first.start(request);
    await until(() => (hub.tries.get('finished') ?? 0) >= 1);
    const stopping = Date.now();
    await first.stopAll();
    expect(Date.now() - stopping).toBeLessThan(5_000);
    expect(journals()).toEqual([`restore-${request.restoreId}.json`]);
    expect((await RestoreJournal.leftovers(dir))[0].state.phase).toBe('local');

    hubAway = false;
    calls.length = 0;
    const next = runner(host, hub.report);
    const done = await next.cleanupLeftovers();
    expect(done).toEqual([`telling the hub that instant recovery ${request.restoreId} is local`]);
    await until(() => hub.taken.some((r) => r.type === 'finished'));
    await until(() => !next.isRunning(request.restoreId));
    expect(calls).toEqual(['releaseInstant', 'settleInstant']);
    expect(journals()).toEqual([]);
  });
});
