import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createQcow2, imagesIdentical, MiB, writeRandomRaw } from '../../test/fixtures/qemu-nbd-images';
import { isRunning, nbdinfoJson, pidsMentioning } from '../../test/fixtures/qemu-nbd-processes';
import { eventCount, startTestHub, TestHub } from '../../test/support/test-hub';
import { DomainError } from '../eventing/domain-error';
import { runWithContext } from '../eventing/request-context';
import { ExportRequest, NbdExportsService } from './exports/nbd-exports.service';

const run = promisify(execFile);

/**
 * The exports workflow the backups, restores and restore-point exports run (the API has no route that exports a file
 * by its path): driven in the real hub, with real qemu-nbd and real qcow2 files; leases and processes read over the API.
 */
describe('qemu-nbd exports of the hub (real qemu-nbd, real qcow2)', () => {
  let hub: TestHub;
  let repo: string;

  beforeEach(async () => {
    hub = await startTestHub({ SENDENSE_NBD_PORTS: '12300-12309' });
    repo = join(hub.dataDir, 'repositories', 'main');
    mkdirSync(repo, { recursive: true });
  });
  afterEach(async () => {
    await hub.close();
    expect(await pidsMentioning(hub.dataDir)).toEqual([]);
  });

  const service = () => hub.app.get(NbdExportsService);
  const asAdmin = <T>(work: () => Promise<T>) => runWithContext({ correlationId: randomUUID(), actor: 'admin' }, work);
  const startExport = (request: Pick<ExportRequest, 'jobId' | 'diskId' | 'file'> & Partial<ExportRequest>) =>
    asAdmin(() => service().startAndShow({ format: 'qcow2', readOnly: false, bitmap: null, ...request }));
  const stopExport = (leaseId: string) => asAdmin(() => service().stopAndShow(leaseId));
  const processes = async () => (await hub.admin(hub.http().get('/api/v1/nbd/processes')).expect(200)).body;
  const leasedPorts = async () => (await hub.admin(hub.http().get('/api/v1/nbd/ports')).expect(200)).body.map((l: { port: number }) => l.port);

  it('serves a qcow2 image that nbdinfo sees and nbdcopy writes into; stopping releases the lease', async () => {
    const image = await createQcow2(join(repo, 'disk0.qcow2'), 64 * MiB);
    const raw = join(hub.dataDir, 'source.raw');
    writeRandomRaw(raw, 64 * MiB);

    const started = { body: await startExport({ jobId: 'job-1', diskId: 'disk0', file: image }) };
    expect(started.body).toEqual({ leaseId: expect.any(String), port: expect.any(Number), exportName: 'job-1-disk0', pid: expect.any(Number) });
    const uri = `nbd://127.0.0.1:${started.body.port}/job-1-disk0`;
    expect((await nbdinfoJson(uri))['export-size']).toBe(64 * MiB);
    await run('nbdcopy', ['--flush', raw, uri]);
    expect((await processes())[0]).toMatchObject({ leaseId: started.body.leaseId, state: 'running', pid: started.body.pid, file: image });
    expect(await leasedPorts()).toEqual([started.body.port]);

    await stopExport(started.body.leaseId);
    expect(isRunning(started.body.pid)).toBe(false);
    expect(await leasedPorts()).toEqual([]);
    expect((await processes())[0]).toMatchObject({ state: 'stopped', exitCode: expect.any(Number) });
    expect(await imagesIdentical(raw, image)).toBe(true);

    const audit = await hub.admin(hub.http().get(`/api/v1/audit/streams/qemu-nbd-${started.body.leaseId}`)).expect(200);
    expect(audit.body.events.map((e: { type: string }) => e.type)).toEqual(['QemuNbdStartRequested', 'QemuNbdStarted', 'QemuNbdExited', 'QemuNbdStopped']);
    expect(audit.body.events[1].data).toMatchObject({ pid: started.body.pid, port: started.body.port, file: image, args: expect.arrayContaining(['--persistent', '-b', '127.0.0.1']) });
    expect(audit.body.events[2].data).toMatchObject({ expected: true });
  });

  it('records a kill -9 of qemu-nbd as an unexpected exit and releases the lease within 2 s', async () => {
    const image = await createQcow2(join(repo, 'disk0.qcow2'), 16 * MiB);
    const started = { body: await startExport({ jobId: 'job-k', diskId: 'disk0', file: image, readOnly: true }) };
    const killedAt = Date.now();
    process.kill(started.body.pid, 'SIGKILL');
    for (;;) {
      const [p] = await processes();
      if (p.state === 'exited' && (await leasedPorts()).length === 0) break;
      if (Date.now() - killedAt > 2000) throw new Error(`not recorded within 2 s: ${JSON.stringify(p)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const [p] = await processes();
    expect(p).toMatchObject({ state: 'exited', signal: 'SIGKILL', exitCode: null });
    const audit = await hub.admin(hub.http().get(`/api/v1/audit/streams/qemu-nbd-${started.body.leaseId}`)).expect(200);
    expect(audit.body.events[2]).toMatchObject({ type: 'QemuNbdExited', data: { expected: false, signal: 'SIGKILL' } });
    const host = require('node:os').hostname();
    const ports = await hub.admin(hub.http().get(`/api/v1/audit/streams/nbd-ports-${host}`)).expect(200);
    expect(ports.body.events.at(-1)).toMatchObject({ type: 'NbdPortReleased', data: { leaseId: started.body.leaseId, reason: 'qemu-nbd exited unexpectedly (SIGKILL)' } });
  });

  it('refuses a second writer on a locked image as a conflict and leaves no lease or process', async () => {
    const image = await createQcow2(join(repo, 'disk0.qcow2'), 16 * MiB);
    const first = { body: await startExport({ jobId: 'job-w', diskId: 'disk0', file: image }) };
    const second = await startExport({ jobId: 'job-w', diskId: 'disk1', file: image }).catch((e: unknown) => e);
    expect(second).toBeInstanceOf(DomainError);
    expect(second).toMatchObject({ kind: 'conflict', message: expect.stringMatching(/qemu-nbd could not export .*lock/) });
    expect(await leasedPorts()).toEqual([first.body.port]);
    const failed = (await processes()).find((p: { diskId: string }) => p.diskId === 'disk1');
    expect(failed).toMatchObject({ state: 'exited', error: expect.stringMatching(/lock/) });
    expect(await pidsMentioning(hub.dataDir)).toEqual([first.body.pid]);
  });

  it('refuses a running export port release with 409 and releases job ports by stopping their exports', async () => {
    const image = await createQcow2(join(repo, 'disk0.qcow2'), 16 * MiB);
    const started = { body: await startExport({ jobId: 'job-r', diskId: 'disk0', file: image }) };
    const refused = await hub.admin(hub.http().delete(`/api/v1/nbd/ports/${started.body.port}`)).expect(409);
    expect(refused.body.message).toMatch(/serves a running export/);
    const released = await hub.admin(hub.http().delete('/api/v1/nbd/ports/job/job-r')).expect(200);
    expect(released.body).toEqual({ released: [started.body.port] });
    expect(isRunning(started.body.pid)).toBe(false);
    expect((await processes())[0].state).toBe('stopped');
  });

  it.each([
    [{ file: '/nonexistent/x.qcow2' }, 'invalid', /outside the configured repositories/],
    [{ file: '/etc/passwd' }, 'invalid', /outside the configured repositories/],
    [{ file: 'relative.qcow2' }, 'invalid', /file must be an absolute path/],
    [{ file: '@REPO/missing.qcow2' }, 'not_found', /does not exist/],
    [{ file: '@REPO/../../../../etc/passwd' }, 'invalid', /outside the configured repositories/],
    [{ file: '@REPO' }, 'invalid', /not a regular file/],
    [{ file: '@REPO/disk.qcow2', format: 'raw' as const, bitmap: 'b1' }, 'invalid', /bitmap can only be exported from a qcow2/],
  ])('refuses %j (%s) and changes nothing', async (request, kind, message) => {
    await createQcow2(join(repo, 'disk.qcow2'), 16 * MiB);
    const before = await eventCount(hub.db);
    const refused = await startExport({ jobId: 'j', diskId: 'd', ...request, file: request.file.replace('@REPO', repo) }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DomainError);
    expect(refused).toMatchObject({ kind, message: expect.stringMatching(message) });
    expect(await eventCount(hub.db)).toBe(before);
    expect(await pidsMentioning(hub.dataDir)).toEqual([]);
  });

  it('says not found for stopping an unknown export', async () => {
    await expect(stopExport('6f1c1c44-1111-4e4e-9a9a-0123456789ab')).rejects.toMatchObject({ kind: 'not_found' });
  });
});
