import { Injectable } from '@nestjs/common';
import type { Readable } from 'node:stream';
import { DomainError } from '../../eventing/domain-error';
import { configurationFileOf, writeConfigurationFile } from '../../repositories/qcow2/configuration-files';
import { digestFileOf, writeDigestFile } from '../../repositories/qcow2/digest-files';
import { chunkPointDigests } from '../../repositories/chunks/point-server';
import { insideRoot } from '../../repositories/qcow2/inside-root';
import { RepositoriesService } from '../../repositories/registry/repositories.service';
import { BlockDigests, DIGEST_BLOCK_SIZE, DIGEST_LENGTH, DigestFormatError } from '../../wire/block-digests';
import { ConfigurationFormatError, MAX_CONFIGURATION_BYTES, parseVmConfiguration } from '../../wire/vm-configuration';
import { BackupJobState, isTerminal } from '../backup-job.aggregate';
import { BackupJobReader } from '../backup-job.reader';

/** Header plus, at worst, one run header and one digest per block. */
const maxBytes = (virtualSize: number) => 64 + Math.ceil(virtualSize / DIGEST_BLOCK_SIZE) * (16 + DIGEST_LENGTH);

/** Closed jobs remembered: an upload still reading its body after this many later clean-ups has long timed out. */
const CLOSED_KEPT = 1000;

/**
 * What an agent hands over beside a job's disks: the block digests it hashed while it sent each disk, and
 * the VM's configuration at the snapshot's instant. Both are written where the restore point's manifest will
 * be as soon as they arrive; the job's finish step names them in the manifest and the chain, and a failed
 * job's clean-up removes them with its other files.
 */
@Injectable()
export class JobUploads {
  private readonly writing = new Map<string, Set<Promise<unknown>>>();
  private readonly closed = new Set<string>();

  constructor(
    private readonly jobs: BackupJobReader,
    private readonly repositories: RepositoriesService,
  ) {}

  /**
   * A failed job's clean-up calls this before it removes the job's files. An upload that was still reading its
   * body when the job failed would otherwise write its file after the clean-up, and leave it behind. From
   * here on the job's uploads are refused, and this resolves once the writes already under way have ended.
   */
  async close(jobId: string): Promise<void> {
    this.closed.add(jobId);
    if (this.closed.size > CLOSED_KEPT) this.closed.delete(this.closed.values().next().value!);
    await Promise.allSettled([...(this.writing.get(jobId) ?? [])]);
  }

  async receive(jobId: string, diskId: string, body: Readable): Promise<{ diskId: string; blocks: number }> {
    const state = await this.openJob(jobId);
    const target = state.targets.find((t) => t.diskId === diskId);
    if (!target) throw new DomainError('not_found', `backup job ${jobId} has no target disk ${diskId}`);
    if (state.disks[diskId]?.done) throw new DomainError('conflict', `disk ${diskId} of job ${jobId} is already reported complete`);
    const data = await readBody(body, maxBytes(target.virtualSize), `the digest upload exceeds ${maxBytes(target.virtualSize)} bytes for this disk`);
    let digests: BlockDigests;
    try {
      digests = BlockDigests.decode(data);
    } catch (error) {
      if (error instanceof DigestFormatError) throw new DomainError('invalid', error.message);
      throw error;
    }
    if (digests.virtualSize !== target.virtualSize) throw new DomainError('invalid', `the digests describe a ${digests.virtualSize}-byte disk, the target of ${diskId} is ${target.virtualSize} bytes`);
    const root = (await this.repositories.definition(state.repositoryId!)).root;
    const written = await this.guarded(jobId, () => writeDigestFile(root, digestFileOf(state.vmId!, state.restorePointId!, diskId), digests));
    return { diskId, blocks: written.blocks };
  }

  /** The VM's configuration (src/wire/vm-configuration.ts), once per job, before the point is recorded. */
  async receiveConfiguration(jobId: string, body: Readable): Promise<{ nvram: boolean; tpm: boolean }> {
    const state = await this.openJob(jobId);
    if (!state.restorePointId) throw new DomainError('conflict', `backup job ${jobId} has not decided its restore point yet`);
    const data = await readBody(body, MAX_CONFIGURATION_BYTES, `the configuration upload exceeds ${MAX_CONFIGURATION_BYTES} bytes`);
    let config;
    try {
      config = parseVmConfiguration(data);
    } catch (error) {
      if (error instanceof ConfigurationFormatError) throw new DomainError('invalid', error.message);
      throw error;
    }
    const root = (await this.repositories.definition(state.repositoryId!)).root;
    const written = await this.guarded(jobId, () => writeConfigurationFile(root, configurationFileOf(state.vmId!, state.restorePointId!), config));
    return { nvram: written.nvram, tpm: written.tpm };
  }

  /**
   * The digest of every block a full's target started from (its `knownFrom` point, src/wire/block-digests.ts), for
   * the job's agent to compare its blocks with before it sends them. 404 for a target that started empty.
   */
  async knownDigests(jobId: string, diskId: string): Promise<Buffer> {
    const state = await this.openJob(jobId);
    const target = state.targets.find((t) => t.diskId === diskId);
    if (!target) throw new DomainError('not_found', `backup job ${jobId} has no target disk ${diskId}`);
    if (!target.knownFrom) throw new DomainError('not_found', `the target of disk ${diskId} of job ${jobId} started empty: no block of it is known`);
    const root = (await this.repositories.definition(state.repositoryId!)).root;
    const digests = await chunkPointDigests(insideRoot(root, target.knownFrom));
    if (!digests) throw new DomainError('not_found', `${target.knownFrom} is no chunk point`);
    if (digests.virtualSize !== target.virtualSize) throw new DomainError('conflict', `${target.knownFrom} holds a ${digests.virtualSize}-byte disk, the target of ${diskId} is ${target.virtualSize} bytes`);
    return digests.encode();
  }

  private async openJob(jobId: string): Promise<BackupJobState> {
    const state = await this.jobs.get(jobId);
    if (isTerminal(state)) throw new DomainError('conflict', `backup job ${jobId} has ended`);
    return state;
  }

  /** No await between the closed check and the write's registration: close() sees every write that passed it. */
  private async guarded<T>(jobId: string, write: () => Promise<T>): Promise<T> {
    if (this.closed.has(jobId)) throw new DomainError('conflict', `backup job ${jobId} has ended`);
    const running = write();
    const writes = this.writing.get(jobId) ?? new Set();
    this.writing.set(jobId, writes.add(running));
    try {
      return await running;
    } finally {
      writes.delete(running);
      if (!writes.size) this.writing.delete(jobId);
    }
  }
}

function readBody(body: Readable, limit: number, tooLarge: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        body.destroy();
        reject(new DomainError('invalid', tooLarge));
        return;
      }
      chunks.push(chunk);
    });
    body.once('end', () => resolve(Buffer.concat(chunks)));
    body.once('error', reject);
  });
}
