import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reportsUntilEnd } from '../../test/support/runner-reports';
import type { RestoreReport, RestoreStartRequest } from '../wire/restore-protocol';
import { type RestoreHost, RestoreRunner } from './restore-runner';
import { LibvirtRestorer } from './sources/libvirt/libvirt-restorer';
import type { LibvirtSource } from './sources/libvirt/libvirt-source';

/**
 * The runner's own failure paths with the real qemu-img and qemu-nbd; the hypervisor is left out (its plan is
 * given, its undo is the libvirt restorer's, which touches no domain when none was defined).
 */

jest.setTimeout(60_000);

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sendense-restore-runner-int-'));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const request = (restoreId: string, name: string): RestoreStartRequest => ({
  restoreId,
  correlationId: `corr-${restoreId}`,
  causationId: `cause-${restoreId}`,
  restorePointId: 'rp-1',
  vmId: 'vm-1',
  mode: 'full',
  target: { kind: 'new-domain', name, storageDir: null, start: false },
  configuration: null,
  definition: { memoryMiB: 64, vcpus: 1 },
  disks: [{ diskId: 'vda', virtualSize: 1 << 20, digests: false, nbd: { port: 1, exportName: 'vda', psk: { identity: 'x', key: '00'.repeat(32) } } }],
});

async function restoreOnce(workDir: string, storage: string, req: RestoreStartRequest): Promise<RestoreReport[]> {
  const restorer = new LibvirtRestorer({} as LibvirtSource, { workDir: join(workDir, 'libvirt'), log: () => undefined });
  const file = join(storage, `${(req.target as { name: string }).name}-vda.qcow2`);
  const host = {
    plan: async () => [{ diskId: 'vda', virtualSize: 1 << 20, format: 'qcow2' as const, write: file, final: file, owner: null }],
    undo: (state) => restorer.undo(state),
  } as Partial<RestoreHost> as RestoreHost;
  const reports = reportsUntilEnd<RestoreReport>();
  const runner = new RestoreRunner({
    host,
    workDir,
    hubHost: '127.0.0.1',
    connectSource: () => Promise.reject(new Error('not reached')),
    fetchDigests: () => Promise.reject(new Error('not reached')),
    report: reports.report,
    log: () => undefined,
  });
  runner.start(req);
  return reports.ended;
}

describe('RestoreRunner failures', () => {
  it("a qemu-nbd that fails to start (its socket path longer than a Unix socket's) fails the restore with qemu-nbd's reason and leaves no nbd-XXXX directory, journal or disk", async () => {
    // the agent's restores dir deep enough that <dir>/nbd-XXXXXX/nbd.sock exceeds the 108 bytes of sun_path
    const workDir = join(dir, 'w'.repeat(120 - dir.length), 'restores');
    const storage = join(dir, 'storage');
    mkdirSync(workDir, { recursive: true });
    mkdirSync(storage, { recursive: true });
    const reports = await restoreOnce(workDir, storage, request('r-1', 'socketless'));
    expect(reports.at(-1)).toMatchObject({ type: 'failed', reason: expect.stringMatching(/qemu-nbd exited .*too long/) });
    expect(readdirSync(workDir)).toEqual([]);
    expect(readdirSync(storage)).toEqual([]);
  });

  it('a disk file of the target name already there fails the restore and stays: it was not the restore’s to remove', async () => {
    const workDir = join(dir, 'taken', 'restores');
    const storage = join(dir, 'taken', 'storage');
    mkdirSync(workDir, { recursive: true });
    mkdirSync(storage, { recursive: true });
    const theirs = join(storage, 'taken-vda.qcow2');
    writeFileSync(theirs, 'another restore writes here');
    const reports = await restoreOnce(workDir, storage, request('r-2', 'taken'));
    expect(reports.at(-1)).toMatchObject({ type: 'failed', reason: `${theirs} already exists` });
    expect(existsSync(theirs)).toBe(true);
    expect(readdirSync(workDir)).toEqual([]);
  });
});
