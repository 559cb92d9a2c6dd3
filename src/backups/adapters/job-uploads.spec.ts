import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { makeTempDir, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { configurationFileOf } from '../../repositories/qcow2/configuration-files';
import { digestFileOf } from '../../repositories/qcow2/digest-files';
import { RepositoriesService } from '../../repositories/registry/repositories.service';
import { BlockDigests, DIGEST_BLOCK_SIZE as B, DIGEST_LENGTH } from '../../wire/block-digests';
import { BackupJobReader } from '../backup-job.reader';
import { JobUploads } from './job-uploads';

const SIZE = 64 * B;
const digests = new BlockDigests(SIZE, [{ first: 0, count: 64, zero: false, digests: Buffer.alloc(64 * DIGEST_LENGTH, 7) }]).encode();
const job = { phase: 'transferring', vmId: 'vm1', repositoryId: 'repo1', restorePointId: 'rp-1', targets: [{ diskId: 'disk0', virtualSize: SIZE }], disks: {} };

describe('JobUploads and a failed job closing', () => {
  let root: string;
  let uploads: JobUploads;
  const file = () => join(root, digestFileOf('vm1', 'rp-1', 'disk0'));
  const present = () => fs.stat(file()).then(() => true, () => false);

  beforeEach(async () => {
    root = await makeTempDir('digest-uploads');
    const jobs = { get: async () => job } as unknown as BackupJobReader;
    const repositories = { definition: async () => ({ root }) } as unknown as RepositoriesService;
    uploads = new JobUploads(jobs, repositories);
  });
  afterEach(async () => {
    await removeTempDir(root);
  });

  it('an upload still reading its body when the job closes is refused and writes nothing', async () => {
    const body = new PassThrough();
    const received = uploads.receive('job-1', 'disk0', body);
    body.write(digests.subarray(0, 100));
    await uploads.close('job-1');
    body.end(digests.subarray(100));
    await expect(received).rejects.toMatchObject({ kind: 'conflict' });
    expect(await present()).toBe(false);
  });

  it('close waits for a write under way, so the clean-up after it finds the file', async () => {
    const body = new PassThrough();
    const received = uploads.receive('job-1', 'disk0', body);
    body.end(digests);
    const writing = (uploads as unknown as { writing: Map<string, Set<Promise<unknown>>> }).writing;
    while (!writing.has('job-1')) await new Promise((r) => setImmediate(r));
    await uploads.close('job-1');
    expect(await present()).toBe(true);
    await expect(received).resolves.toEqual({ diskId: 'disk0', blocks: 64 });
    expect(writing.size).toBe(0);
  });

  it("another job's uploads are not refused", async () => {
    await uploads.close('job-2');
    const body = new PassThrough();
    const received = uploads.receive('job-1', 'disk0', body);
    body.end(digests);
    await expect(received).resolves.toEqual({ diskId: 'disk0', blocks: 64 });
    expect(await present()).toBe(true);
  });

  const configuration = () => {
    const body = new PassThrough();
    body.end(JSON.stringify({ schemaVersion: 1, kind: 'libvirt', domainXml: "<domain type='qemu'><name>web</name></domain>", nvram: null, tpm: null, capturedAt: '2026-11-23T10:00:00.000Z' }));
    return body;
  };
  const configPresent = () => fs.stat(join(root, configurationFileOf('vm1', 'rp-1'))).then(() => true, () => false);

  it("writes the VM's configuration beside the manifest, and refuses it once the job has closed", async () => {
    await expect(uploads.receiveConfiguration('job-1', configuration())).resolves.toEqual({ nvram: false, tpm: false });
    expect(await configPresent()).toBe(true);
    await fs.rm(join(root, configurationFileOf('vm1', 'rp-1')));
    await uploads.close('job-1');
    await expect(uploads.receiveConfiguration('job-1', configuration())).rejects.toMatchObject({ kind: 'conflict' });
    expect(await configPresent()).toBe(false);
  });

  it('refuses a configuration that is not one, writing nothing', async () => {
    const body = new PassThrough();
    body.end(JSON.stringify({ schemaVersion: 1, kind: 'libvirt', domainXml: 'rm -rf /', nvram: null, tpm: null, capturedAt: 'x' }));
    await expect(uploads.receiveConfiguration('job-1', body)).rejects.toMatchObject({ kind: 'invalid' });
    expect(await configPresent()).toBe(false);
  });
});
