import { Injectable } from '@nestjs/common';
import type { Readable } from 'node:stream';
import { DomainError } from '../../eventing/domain-error';
import { digestFileOf, writeDigestFile } from '../../repositories/qcow2/digest-files';
import { RepositoriesService } from '../../repositories/registry/repositories.service';
import { BlockDigests, DIGEST_BLOCK_SIZE, DIGEST_LENGTH, DigestFormatError } from '../../wire/block-digests';
import { isTerminal } from '../backup-job.aggregate';
import { BackupJobReader } from '../backup-job.reader';

/** Header plus, at worst, one run header and one digest per block. */
const maxBytes = (virtualSize: number) => 64 + Math.ceil(virtualSize / DIGEST_BLOCK_SIZE) * (16 + DIGEST_LENGTH);

/** Closed jobs remembered: an upload still reading its body after this many later clean-ups has long timed out. */
const CLOSED_KEPT = 1000;

/**
 * The block digests an agent hashed while it sent a disk. They are written where the restore point's
 * manifest will be (its digest file) as soon as they arrive; the job's finish step names them in the
 * manifest and the chain, and a failed job's clean-up removes them with its other files.
 */
@Injectable()
export class DigestUploads {
  private readonly writing = new Map<string, Set<Promise<unknown>>>();
  private readonly closed = new Set<string>();

  constructor(
    private readonly jobs: BackupJobReader,
    private readonly repositories: RepositoriesService,
  ) {}

  /**
   * A failed job's clean-up calls this before it removes the job's files. An upload that was still reading its
   * body when the job failed would otherwise write its digest file after the clean-up, and leave it behind. From
   * here on the job's uploads are refused, and this resolves once the writes already under way have ended.
   */
  async close(jobId: string): Promise<void> {
    this.closed.add(jobId);
    if (this.closed.size > CLOSED_KEPT) this.closed.delete(this.closed.values().next().value!);
    await Promise.allSettled([...(this.writing.get(jobId) ?? [])]);
  }

  async receive(jobId: string, diskId: string, body: Readable): Promise<{ diskId: string; blocks: number }> {
    const state = await this.jobs.get(jobId);
    if (isTerminal(state)) throw new DomainError('conflict', `backup job ${jobId} has ended`);
    const target = state.targets.find((t) => t.diskId === diskId);
    if (!target) throw new DomainError('not_found', `backup job ${jobId} has no target disk ${diskId}`);
    if (state.disks[diskId]?.done) throw new DomainError('conflict', `disk ${diskId} of job ${jobId} is already reported complete`);
    const data = await readBody(body, maxBytes(target.virtualSize));
    let digests: BlockDigests;
    try {
      digests = BlockDigests.decode(data);
    } catch (error) {
      if (error instanceof DigestFormatError) throw new DomainError('invalid', error.message);
      throw error;
    }
    if (digests.virtualSize !== target.virtualSize) throw new DomainError('invalid', `the digests describe a ${digests.virtualSize}-byte disk, the target of ${diskId} is ${target.virtualSize} bytes`);
    const root = (await this.repositories.definition(state.repositoryId!)).root;
    // No await between this check and the write's registration: close() sees every write that passed it.
    if (this.closed.has(jobId)) throw new DomainError('conflict', `backup job ${jobId} has ended`);
    const write = writeDigestFile(root, digestFileOf(state.vmId!, state.restorePointId!, diskId), digests);
    const writes = this.writing.get(jobId) ?? new Set();
    this.writing.set(jobId, writes.add(write));
    try {
      return { diskId, blocks: (await write).blocks };
    } finally {
      writes.delete(write);
      if (!writes.size) this.writing.delete(jobId);
    }
  }
}

function readBody(body: Readable, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        body.destroy();
        reject(new DomainError('invalid', `the digest upload exceeds ${limit} bytes for this disk`));
        return;
      }
      chunks.push(chunk);
    });
    body.once('end', () => resolve(Buffer.concat(chunks)));
    body.once('error', reject);
  });
}
