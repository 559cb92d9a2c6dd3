import { execFile } from 'node:child_process';
import { createWriteStream, promises as fs } from 'node:fs';
import { get as httpGet, IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { promisify } from 'node:util';
import { MiB, writeToDisk } from '../../test/fixtures/vm/sample-vm';
import { BackupLab, LAB_TOKEN } from '../../test/support/backup-lab';
import { MAX_OPEN_EXPORTS_PER_TOKEN } from './point-export.workflow';
import { processesMentioning } from '../../test/support/processes';
import { restoreCommand } from '../cli/commands/restore-cli';
import { ExtentsDecoder, EXTENTS_MEDIA_TYPE } from './image-extents';

const run = promisify(execFile);

/** A real hub and agent process, real backups of a real VM, real qemu-img/qemu-nbd reading what the hub hands out. */
describe('disk restore without a hypervisor: image downloads and NBD exports of restore points', () => {
  // disk1 carries 40 MiB of data at its end, so a download is larger than what loopback sockets buffer
  const lab = new BackupLab();
  let scratch: string;
  let fullId: string;
  let incId: string;
  const point = async (id: string) => (await lab.api('GET', `/api/v1/restore-points/${id}`)).body;
  const topFile = async (id: string, diskId: string) => join(lab.repoRoot, (await point(id)).disks.find((d: { diskId: string }) => d.diskId === diskId).file);
  const imageUrl = (id: string, diskId: string, query = '') => `http://127.0.0.1:${lab.apiPort}/api/v1/restore-points/${id}/disks/${diskId}/image${query}`;
  const workArea = () => join(lab.hubDataDir, 'disk-images');
  const auth = { Authorization: `Bearer ${LAB_TOKEN}` };

  async function download(url: string, target: string, headers: Record<string, string> = {}): Promise<Response> {
    const res = await fetch(url, { headers: { ...auth, ...headers } });
    if (res.body) await pipeline(Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>), createWriteStream(target));
    return res;
  }

  async function sameContent(a: string, formatA: string, b: string, formatB: string): Promise<boolean> {
    const { stdout, stderr } = await run('qemu-img', ['compare', '-U', '-f', formatA, '-F', formatB, a, b]).catch((e) => ({ stdout: String(e.stdout), stderr: String(e.stderr) }));
    return /Images are identical/.test(stdout + stderr);
  }

  /**
   * What runs for downloads on the hub the moment a raw download's last byte arrives, read by a plain http client
   * (each socket read handed on at once; fetch's streams hand bytes on later than its export takes to stop).
   */
  function runningAtLastByte(url: string, size: number): Promise<string[]> {
    return new Promise((resolve, reject) => {
      let received = 0;
      httpGet(url, { headers: auth }, (res) => {
        res.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received === size) resolve(processesMentioning(workArea()).map((p) => p.cmdline));
        });
        res.on('end', () => reject(new Error(`the download ended after ${received} of ${size} bytes`)));
        res.on('error', reject);
      }).on('error', reject);
    });
  }

  /** A download that sent its headers and now waits: the client reads nothing, so the hub's writes stall. */
  function stalledDownload(url: string): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = httpGet(url, { headers: auth }, (res) => {
        res.pause();
        resolve(res);
      });
      req.on('error', reject);
    });
  }

  async function audited(correlationId: string): Promise<any[]> {
    let events: any[] = [];
    await lab.until(async () => {
      events = ((await lab.api('GET', `/api/v1/audit/correlations/${correlationId}`)).body?.events ?? []).filter((e: { type: string }) => e.type === 'DiskImageDownloaded');
      return events.length > 0;
    }, 10_000, `the download of ${correlationId} to be recorded`);
    return events;
  }

  async function nothingLeftBehind(): Promise<void> {
    await lab.until(async () => processesMentioning(lab.dir).filter((p) => p.cmdline.includes('qemu-nbd') || p.cmdline.includes('qemu-img')).length === 0, 10_000, 'qemu-nbd and qemu-img to be gone');
    // the work dir goes right after the answer's last byte, which the client may see first
    await lab.until(async () => (await fs.readdir(workArea()).catch(() => [])).length === 0, 10_000, `${workArea()} to be empty`);
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
  }

  beforeAll(async () => {
    await lab.start([64 * MiB, 96 * MiB], [0, 40 * MiB]);
    scratch = join(lab.dir, 'scratch');
    await fs.mkdir(scratch);
    const full = await lab.waitForJob(await lab.backup('full'));
    expect(full.status).toBe('completed');
    fullId = full.restorePointId;
    await writeToDisk(lab.vm.disks[0].path, [{ offset: 20 * MiB, length: 3 * MiB, pattern: 0xa2 }, { offset: 40 * MiB + 4096, length: 10_000, pattern: 0x3c }]);
    const inc = await lab.waitForJob(await lab.backup('incremental'));
    expect(inc.status).toBe('completed');
    expect(inc.type).toBe('incremental');
    incId = inc.restorePointId;
  }, 240_000);
  afterAll(async () => lab.close(), 60_000);

  it('raw: the whole disk as the point holds it, Content-Length the virtual size, recorded with the request correlation id', async () => {
    const out = join(scratch, 'inc-disk0.raw');
    const res = await download(imageUrl(incId, 'disk0'), out, { 'X-Correlation-Id': 'dl-raw-inc' });
    expect(res.status).toBe(200);
    // its export is stopped before the last byte leaves: a client that has the whole image finds nothing running for it
    expect(await runningAtLastByte(imageUrl(incId, 'disk0'), 64 * MiB)).toEqual([]);
    expect(res.headers.get('content-length')).toBe(String(64 * MiB));
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(res.headers.get('x-sendense-integrity')).toBe('unverified');
    expect((await fs.stat(out)).size).toBe(64 * MiB);
    expect(await sameContent(out, 'raw', await topFile(incId, 'disk0'), 'qcow2')).toBe(true);
    // the point's own content, not the newest: the full reads differently and its download matches the full
    expect(await sameContent(out, 'raw', await topFile(fullId, 'disk0'), 'qcow2')).toBe(false);
    const fullOut = join(scratch, 'full-disk0.raw');
    expect((await download(imageUrl(fullId, 'disk0', '?format=raw'), fullOut)).status).toBe(200);
    expect(await sameContent(fullOut, 'raw', await topFile(fullId, 'disk0'), 'qcow2')).toBe(true);

    const [event] = await audited('dl-raw-inc');
    expect(event.streamId).toBe(`disk-image-downloads-${incId}`);
    expect(event.data).toEqual({ restorePointId: incId, vmId: 'vm1', repositoryId: lab.repositoryId, diskId: 'disk0', format: 'raw', bytes: 64 * MiB, size: 64 * MiB, range: null, completed: true, integrity: 'unverified', forced: false, actor: 'admin', error: null });
    expect(event.metadata.correlationId).toBe('dl-raw-inc');
    await nothingLeftBehind();
  }, 120_000);

  it('raw as extents (Accept: application/vnd.sendense.extents): the data in frames, the holes left out, the same disk rebuilt; recorded as the whole disk sent', async () => {
    const res = await fetch(imageUrl(incId, 'disk0'), { headers: { ...auth, Accept: `${EXTENTS_MEDIA_TYPE}, application/octet-stream`, 'X-Correlation-Id': 'dl-extents' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(EXTENTS_MEDIA_TYPE);
    expect(res.headers.get('x-sendense-disk-size')).toBe(String(64 * MiB));
    expect(res.headers.get('content-length')).toBeNull();
    const body = Buffer.from(await res.arrayBuffer());
    const disk = Buffer.alloc(64 * MiB);
    const decoder = new ExtentsDecoder(64 * MiB);
    for (const piece of decoder.push(body)) if ('data' in piece) piece.data.copy(disk, piece.offset);
    decoder.finish();
    const out = join(scratch, 'inc-disk0.extents.raw');
    await fs.writeFile(out, disk);
    expect(await sameContent(out, 'raw', await topFile(incId, 'disk0'), 'qcow2')).toBe(true);
    // the ext4 image and the incremental's 3 MiB, not the 64 MiB of the disk
    expect(body.length).toBeLessThan(16 * MiB);
    const [event] = await audited('dl-extents');
    expect(event.data).toMatchObject({ format: 'raw', bytes: 64 * MiB, size: 64 * MiB, range: null, completed: true });
    // a range asked with it is still answered as bytes
    const ranged = await fetch(imageUrl(incId, 'disk0'), { headers: { ...auth, Accept: EXTENTS_MEDIA_TYPE, Range: 'bytes=0-4095' } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get('content-type')).toBe('application/octet-stream');
    expect((await ranged.arrayBuffer()).byteLength).toBe(4096);
    await nothingLeftBehind();
  }, 120_000);

  it('raw: one byte range answers 206 with exactly those bytes; a range beyond the disk answers 416', async () => {
    const reference = join(scratch, 'inc-disk0.ref.raw');
    await run('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'raw', await topFile(incId, 'disk0'), reference]);
    const whole = await fs.readFile(reference);
    for (const [first, last] of [[20 * MiB - 100, 20 * MiB + 5000], [0, 0], [40 * MiB + 4000, 40 * MiB + 14_200], [64 * MiB - 10, 64 * MiB - 1]]) {
      const res = await fetch(imageUrl(incId, 'disk0'), { headers: { ...auth, Range: `bytes=${first}-${last}`, 'X-Correlation-Id': `dl-range-${first}` } });
      expect(res.status).toBe(206);
      expect(res.headers.get('content-range')).toBe(`bytes ${first}-${last}/${64 * MiB}`);
      const body = Buffer.from(await res.arrayBuffer());
      expect({ first, same: body.equals(whole.subarray(first, last + 1)) }).toEqual({ first, same: true });
    }
    expect((await audited(`dl-range-${20 * MiB - 100}`))[0].data).toMatchObject({ range: `bytes=${20 * MiB - 100}-${20 * MiB + 5000}`, bytes: 5101, completed: true });
    const beyond = await fetch(imageUrl(incId, 'disk0'), { headers: { ...auth, Range: `bytes=${64 * MiB}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe(`bytes */${64 * MiB}`);
    await nothingLeftBehind();
  }, 120_000);

  it('qcow2: self-contained (no backing file), reads like the point, allocated like the chain it replaces (within 5%)', async () => {
    const out = join(scratch, 'inc-disk1.qcow2');
    const res = await download(imageUrl(incId, 'disk1', '?format=qcow2'), out);
    expect(res.status).toBe(200);
    expect(Number(res.headers.get('content-length'))).toBe((await fs.stat(out)).size);
    const { stdout } = await run('qemu-img', ['info', '--output=json', out]);
    const info = JSON.parse(stdout);
    expect(info.format).toBe('qcow2');
    expect(info['backing-filename']).toBeUndefined();
    expect(info['virtual-size']).toBe(96 * MiB);
    expect(await sameContent(out, 'qcow2', await topFile(incId, 'disk1'), 'qcow2')).toBe(true);
    const allocated = async (f: string) => (await fs.stat(f)).blocks * 512;
    const chain = (await allocated(await topFile(fullId, 'disk1'))) + (await allocated(await topFile(incId, 'disk1')));
    const mine = await allocated(out);
    expect(Math.abs(mine - chain) / chain).toBeLessThan(0.05);
    await nothingLeftBehind();
  }, 120_000);

  it('while a raw download runs, the point and the one it reads through cannot be deleted; the client going away stops it and is recorded', async () => {
    const res = await stalledDownload(`${imageUrl(incId, 'disk1')}`);
    expect(res.statusCode).toBe(200);
    expect(processesMentioning(workArea()).some((p) => p.cmdline.includes('qemu-nbd'))).toBe(true);
    for (const id of [incId, fullId]) {
      const refused = await lab.api('DELETE', `/api/v1/restore-points/${id}`);
      expect({ id, status: refused.status }).toEqual({ id, status: 409 });
      expect(refused.body.message).toMatch(/a disk image download is reading it/);
    }
    res.destroy();
    await lab.until(async () => processesMentioning(workArea()).length === 0, 10_000, 'the image export to stop');
    await nothingLeftBehind();
    const history = (await lab.api('GET', `/api/v1/audit/streams/disk-image-downloads-${incId}?limit=1000`)).body.events;
    expect(history.at(-1).data).toMatchObject({ diskId: 'disk1', format: 'raw', completed: false, size: 96 * MiB, error: 'the client went away' });
    expect(history.at(-1).data.bytes).toBeLessThan(96 * MiB);
  }, 120_000);

  it('while a qcow2 download runs, the point cannot be deleted; its temp image is removed when the client goes away', async () => {
    const res = await stalledDownload(`${imageUrl(incId, 'disk1', '?format=qcow2')}`);
    expect(res.statusCode).toBe(200);
    const building = await fs.readdir(workArea());
    expect(building).toHaveLength(1);
    expect(await fs.readdir(join(workArea(), building[0]))).toEqual(['image.qcow2']);
    expect((await lab.api('DELETE', `/api/v1/restore-points/${incId}`)).status).toBe(409);
    res.destroy();
    await lab.until(async () => (await fs.readdir(workArea())).length === 0, 10_000, 'the temp image to be removed');
    await nothingLeftBehind();
    const history = (await lab.api('GET', `/api/v1/audit/streams/disk-image-downloads-${incId}?limit=1000`)).body.events;
    expect(history.at(-1).data).toMatchObject({ diskId: 'disk1', format: 'qcow2', completed: false });
  }, 120_000);

  it('refuses bad parameters with 400 and unknown points or disks with 404, recording nothing', async () => {
    const recorded = async () => (await lab.api('GET', `/api/v1/audit/streams/disk-image-downloads-${incId}?limit=1000`)).body.events.length;
    const before = await recorded();
    const status = async (url: string) => (await fetch(url, { headers: auth })).status;
    expect(await status(imageUrl(incId, 'disk0', '?format=vmdk'))).toBe(400);
    expect(await status(imageUrl(incId, 'disk0', '?force=yes'))).toBe(400);
    expect(await status(imageUrl(incId, 'disk0', '?format=raw&extra=1'))).toBe(400);
    expect(await status(imageUrl(incId, 'disk%24'))).toBe(400);
    expect(await status(imageUrl('rp%20x', 'disk0'))).toBe(400);
    expect(await status(imageUrl('no-such-point', 'disk0'))).toBe(404);
    const unknownDisk = await fetch(imageUrl(incId, 'disk7'), { headers: auth });
    expect(unknownDisk.status).toBe(404);
    expect(((await unknownDisk.json()) as { message: string }).message).toMatch(/no disk disk7; its disks are disk0, disk1/);
    expect((await lab.api('POST', `/api/v1/restore-points/${incId}/exports`, { tls: 'yes' })).status).toBe(400);
    expect((await lab.api('POST', `/api/v1/restore-points/${incId}/exports`, { diskIds: [] })).status).toBe(400);
    expect((await lab.api('POST', `/api/v1/restore-points/${incId}/exports`, { port: 1 })).status).toBe(400);
    expect((await lab.api('POST', `/api/v1/restore-points/${incId}/exports`, { diskIds: ['disk7'] })).status).toBe(404);
    expect((await lab.api('POST', `/api/v1/restore-points/no-such-point/exports`, {})).status).toBe(404);
    expect((await lab.api('GET', `/api/v1/restore-points/no-such-point/exports`)).status).toBe(404);
    expect((await lab.api('DELETE', `/api/v1/restore-point-exports/not-a-uuid`)).status).toBe(400);
    expect((await lab.api('DELETE', `/api/v1/restore-point-exports/7f1c5a52-1d2e-4c8b-9d7e-0a1b2c3d4e5f`)).status).toBe(404);
    // SENDENSE_NBD_BIND is 0.0.0.0 here: a plain export would be readable by anyone reaching the port
    const plain = await lab.api('POST', `/api/v1/restore-points/${incId}/exports`, { tls: false });
    expect(plain.status).toBe(400);
    expect(plain.body.message).toMatch(/plain export \(tls: false\) is refused because SENDENSE_NBD_BIND is 0.0.0.0/);
    expect(await recorded()).toBe(before);
    expect((await lab.api('GET', `/api/v1/restore-points/${incId}/exports`)).body).toEqual([]);
    await nothingLeftBehind();
  }, 60_000);

  it('exports the point over NBD with TLS-PSK: qemu-img reads exactly the point through it; the point cannot be deleted until the export is closed', async () => {
    const opened = await lab.api('POST', `/api/v1/restore-points/${incId}/exports`, {}, { 'X-Correlation-Id': 'export-inc' });
    expect(opened.status).toBe(201);
    expect(opened.body).toMatchObject({ exportId: expect.any(String), restorePointId: incId });
    expect(opened.body.disks.map((d: { diskId: string }) => d.diskId)).toEqual(['disk0', 'disk1']);
    for (const d of opened.body.disks) {
      expect(d).toMatchObject({ host: '127.0.0.1', tls: true, psk: { identity: expect.any(String), key: expect.stringMatching(/^[0-9a-f]{64}$/) } });
      expect(d.uri).toBe(`nbds://127.0.0.1:${d.port}/${d.exportName}`);
      const pskDir = join(scratch, `psk-${d.diskId}`);
      await fs.mkdir(pskDir);
      await fs.writeFile(join(pskDir, 'keys.psk'), `${d.psk.identity}:${d.psk.key}\n`, { mode: 0o600 });
      const viaNbd = join(scratch, `export-${d.diskId}.raw`);
      await run('qemu-img', [
        'convert',
        '--object', `tls-creds-psk,id=tls0,endpoint=client,dir=${pskDir},username=${d.psk.identity}`,
        '--image-opts', `driver=nbd,server.type=inet,server.host=${d.host},server.port=${d.port},export=${d.exportName},tls-creds=tls0`,
        '-O', 'raw', viaNbd,
      ]);
      const reference = join(scratch, `reference-${d.diskId}.raw`);
      await run('qemu-img', ['convert', '-U', '-f', 'qcow2', '-O', 'raw', await topFile(incId, d.diskId), reference]);
      expect({ disk: d.diskId, same: await sameContent(viaNbd, 'raw', reference, 'raw') }).toEqual({ disk: d.diskId, same: true });
      // without the key nothing is served
      await expect(run('qemu-img', ['info', '--image-opts', `driver=nbd,server.type=inet,server.host=${d.host},server.port=${d.port},export=${d.exportName}`])).rejects.toThrow();
    }
    const listed = (await lab.api('GET', `/api/v1/restore-points/${incId}/exports`)).body;
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ exportId: opened.body.exportId, status: 'open', tls: true, openedBy: 'admin', closedAt: null });
    expect(JSON.stringify(listed)).not.toContain(opened.body.disks[0].psk.key);
    const story = (await lab.story('export-inc')).map((e) => e.type);
    expect(story.filter((t) => t === 'QemuNbdStarted')).toHaveLength(2);
    expect(story.at(-1)).toBe('PointExportOpened');

    for (const id of [incId, fullId]) {
      const refused = await lab.api('DELETE', `/api/v1/restore-points/${id}`);
      expect({ id, status: refused.status }).toEqual({ id, status: 409 });
      expect(refused.body.message).toMatch(/exported by NBD lease/);
    }

    const closed = await lab.api('DELETE', `/api/v1/restore-point-exports/${opened.body.exportId}`);
    expect(closed.status).toBe(200);
    expect(closed.body).toMatchObject({ exportId: opened.body.exportId, status: 'closed', closeReason: 'requested' });
    expect((await lab.api('DELETE', `/api/v1/restore-point-exports/${opened.body.exportId}`)).body).toEqual(closed.body);
    await nothingLeftBehind();
  }, 180_000);

  it('CLI: `sendense restore disk` writes a raw image sparsely and a qcow2 as it came, with a progress line; refuses usage errors with 2', async () => {
    const cli = async (...args: string[]) => {
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      let err = '';
      stderr.on('data', (d) => (err += d));
      stdout.resume();
      const code = await restoreCommand(['restore', 'disk', ...args], { SENDENSE_HUB: `http://127.0.0.1:${lab.apiPort}`, SENDENSE_TOKEN: LAB_TOKEN }, { stdout, stderr, cwd: scratch });
      return { code, err };
    };
    const raw = await cli(incId, '--disk', 'disk0', '-o', 'cli-disk0.img');
    expect(raw.code).toBe(0);
    expect(raw.err).toMatch(/disk0 +\[#{30}\] 100%  64\.0 MiB \/ 64\.0 MiB  done/);
    const file = join(scratch, 'cli-disk0.img');
    const st = await fs.stat(file);
    expect(st.size).toBe(64 * MiB);
    expect(await sameContent(file, 'raw', await topFile(incId, 'disk0'), 'qcow2')).toBe(true);
    // holes stayed holes: the ext4 image and the 3 MiB the incremental wrote use a fraction of 64 MiB
    expect(st.blocks * 512).toBeLessThan(16 * MiB);

    const qcow2 = await cli(incId, '--disk', 'disk1', '-o', 'cli-disk1.qcow2', '--format', 'qcow2');
    expect(qcow2.code).toBe(0);
    expect(await sameContent(join(scratch, 'cli-disk1.qcow2'), 'qcow2', await topFile(incId, 'disk1'), 'qcow2')).toBe(true);

    expect((await cli(incId, '--disk', 'disk0', '-o', 'cli-disk0.img')).err).toMatch(/already exists/);
    expect((await cli(incId, '--disk', 'disk0', '-o', 'x.img', '--format', 'vmdk')).code).toBe(2);
    expect((await cli(incId, '-o', 'x.img')).code).toBe(2);
    const unknown = await cli(incId, '--disk', 'disk9', '-o', 'x.img');
    expect(unknown).toMatchObject({ code: 1, err: expect.stringMatching(/404 restore point .* has no disk disk9/) });
    expect(await fs.readdir(scratch)).not.toContain('x.img');
    await nothingLeftBehind();
  }, 120_000);

  it('a corrupt point is refused with 409 naming the damage, and served with force=true, saying so', async () => {
    await writeToDisk(lab.vm.disks[0].path, [{ offset: 30 * MiB, length: MiB, pattern: 0x77 }]);
    const job = await lab.waitForJob(await lab.backup('incremental'));
    expect(job.status).toBe('completed');
    const badId = job.restorePointId;
    // damage a block the point wrote, behind the hub's back
    await run('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x99 ${30 * MiB} 65536`, await topFile(badId, 'disk0')]);
    expect((await lab.api('POST', `/api/v1/restore-points/${badId}/verify`)).body.integrity).toBe('corrupt');
    const refused = await fetch(imageUrl(badId, 'disk1'), { headers: auth });
    expect(refused.status).toBe(409);
    const { message } = (await refused.json()) as { message: string };
    expect(message).toMatch(new RegExp(`^restore point ${badId} is corrupt: disk0 offset ${30 * MiB} length 65536 \\(in restore point ${badId}: expected [0-9a-f]{64}, read [0-9a-f]{64}\\)`));
    expect(message).toMatch(/Add force=true to download it anyway$/);
    const forced = await fetch(imageUrl(badId, 'disk0', '?force=true'), { headers: { ...auth, 'X-Correlation-Id': 'dl-forced' } });
    expect(forced.status).toBe(200);
    expect(forced.headers.get('x-sendense-integrity')).toBe('corrupt');
    expect(forced.headers.get('x-sendense-damaged-in')).toBe(badId);
    expect((await forced.arrayBuffer()).byteLength).toBe(64 * MiB);
    expect((await audited('dl-forced'))[0].data).toMatchObject({ integrity: 'corrupt', forced: true, completed: true });
    await nothingLeftBehind();
  }, 180_000);

  it('across hub restarts: a clean stop closes the exports (hub-shutdown); after a crash the surviving qemu-nbds stay exported and close on request', async () => {
    const first = (await lab.api('POST', `/api/v1/restore-points/${fullId}/exports`, { diskIds: ['disk1'] })).body;
    await lab.stop(lab.hub, 'SIGTERM');
    await lab.startHub();
    const afterStop = (await lab.api('GET', `/api/v1/restore-points/${fullId}/exports`)).body.find((e: { exportId: string }) => e.exportId === first.exportId);
    expect(afterStop).toMatchObject({ status: 'closed', closeReason: 'hub-shutdown' });
    expect(processesMentioning(lab.hubDataDir).filter((p) => p.cmdline.includes('qemu-nbd'))).toEqual([]);

    const second = (await lab.api('POST', `/api/v1/restore-points/${fullId}/exports`, { diskIds: ['disk0'] })).body;
    await lab.stop(lab.hub, 'SIGKILL');
    await lab.startHub();
    const afterCrash = (await lab.api('GET', `/api/v1/restore-points/${fullId}/exports`)).body.find((e: { exportId: string }) => e.exportId === second.exportId);
    expect(afterCrash).toMatchObject({ status: 'open' });
    // still served, with the key handed out before the crash
    const [d] = second.disks;
    const pskDir = join(scratch, 'psk-after-crash');
    await fs.mkdir(pskDir);
    await fs.writeFile(join(pskDir, 'keys.psk'), `${d.psk.identity}:${d.psk.key}\n`, { mode: 0o600 });
    const { stdout } = await run('qemu-img', ['info', '--output=json', '--object', `tls-creds-psk,id=tls0,endpoint=client,dir=${pskDir},username=${d.psk.identity}`, '--image-opts', `driver=nbd,server.type=inet,server.host=${d.host},server.port=${d.port},export=${d.exportName},tls-creds=tls0`]);
    expect(JSON.parse(stdout)['virtual-size']).toBe(64 * MiB);
    expect((await lab.api('DELETE', `/api/v1/restore-points/${fullId}`)).status).toBe(409);
    expect((await lab.api('DELETE', `/api/v1/restore-point-exports/${second.exportId}`)).body).toMatchObject({ status: 'closed', closeReason: 'requested' });
    await nothingLeftBehind();
  }, 180_000);

  it('an export whose qemu-nbd dies is closed at once, its other disk stopped', async () => {
    const opened = (await lab.api('POST', `/api/v1/restore-points/${incId}/exports`, {})).body;
    const processes = (await lab.api('GET', '/api/v1/nbd/processes')).body.filter((p: { exportName: string; state: string }) => p.state === 'running' && opened.disks.some((d: { exportName: string }) => d.exportName === p.exportName));
    expect(processes).toHaveLength(2);
    process.kill(processes[0].pid, 'SIGKILL');
    await lab.until(async () => (await lab.api('GET', `/api/v1/restore-points/${incId}/exports`)).body.find((e: { exportId: string }) => e.exportId === opened.exportId)?.status === 'closed', 15_000, 'the export to be closed');
    const closed = (await lab.api('GET', `/api/v1/restore-points/${incId}/exports`)).body.find((e: { exportId: string }) => e.exportId === opened.exportId);
    expect(closed).toMatchObject({ closeReason: 'qemu-nbd-exited', closeDetail: expect.stringMatching(/SIGKILL/) });
    await nothingLeftBehind();
  }, 120_000);

  it("one token holds at most 16 open exports: a sync token opening them in a loop cannot take the port pool or hold every point; others' go on", async () => {
    const syncToken = (await lab.api('POST', '/api/v1/tokens', { name: 'offsite', role: 'sync' })).body.token;
    const asSync = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> => {
      const res = await fetch(`http://127.0.0.1:${lab.apiPort}${path}`, { method, headers: { Authorization: `Bearer ${syncToken}`, 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: res.status, body: await res.json() };
    };
    const held: string[] = [];
    for (let i = 0; i < MAX_OPEN_EXPORTS_PER_TOKEN; i++) {
      const opened = await asSync('POST', `/api/v1/restore-points/${incId}/exports`, { diskIds: ['disk0'] });
      expect(opened.status).toBe(201);
      held.push(opened.body.exportId);
    }
    const refused = await asSync('POST', `/api/v1/restore-points/${incId}/exports`, { diskIds: ['disk0'] });
    expect(refused).toEqual({ status: 409, body: expect.objectContaining({ message: `offsite holds ${MAX_OPEN_EXPORTS_PER_TOKEN} open restore point exports, the most one token may: close one (DELETE /api/v1/restore-point-exports/{exportId}) first` }) });
    // another token is not held back by it, and one export closed lets the sync token open the next
    const admins = (await lab.api('POST', `/api/v1/restore-points/${incId}/exports`, { diskIds: ['disk0'] })).body;
    expect(admins.exportId).toEqual(expect.any(String));
    expect((await asSync('DELETE', `/api/v1/restore-point-exports/${held.pop()}`)).status).toBe(200);
    const next = await asSync('POST', `/api/v1/restore-points/${incId}/exports`, { diskIds: ['disk0'] });
    expect(next.status).toBe(201);
    for (const exportId of [...held, next.body.exportId, admins.exportId]) expect((await lab.api('DELETE', `/api/v1/restore-point-exports/${exportId}`)).status).toBe(200);
    await nothingLeftBehind();
  }, 120_000);

  it('an export whose caller hung up before the answer (a timed-out request, a dropped tunnel) is closed again at once: nobody else knows its id', async () => {
    const body = JSON.stringify({ diskIds: ['disk0'] });
    const socket = connect(lab.apiPort, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(`POST /api/v1/restore-points/${incId}/exports HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${LAB_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Correlation-Id: hung-up-export\r\n\r\n${body}`);
    socket.destroy();
    const exportsOf = async () => (await lab.api('GET', `/api/v1/restore-points/${incId}/exports`)).body as { exportId: string; status: string; closeReason: string | null; openedAt: string }[];
    let closed: { status: string; closeReason: string | null }[] = [];
    await lab.until(async () => (closed = (await exportsOf()).filter((e) => e.closeReason === 'answer-abandoned')).length === 1, 15_000, 'the abandoned export to be closed');
    expect(closed[0].status).toBe('closed');
    expect((await exportsOf()).filter((e) => e.status === 'open')).toEqual([]);
    await nothingLeftBehind();
  }, 60_000);

  it('with no download or export left, the points that were refused delete', async () => {
    const newest = (await lab.api('GET', `/api/v1/vms/vm1/restore-points?repositoryId=${lab.repositoryId}`)).body.at(-1).restorePointId;
    expect((await lab.api('DELETE', `/api/v1/restore-points/${newest}`)).status).toBe(200);
    expect((await lab.api('DELETE', `/api/v1/restore-points/${incId}`)).status).toBe(200);
    expect((await lab.api('DELETE', `/api/v1/restore-points/${fullId}`)).status).toBe(200);
    await nothingLeftBehind();
  }, 120_000);
});
