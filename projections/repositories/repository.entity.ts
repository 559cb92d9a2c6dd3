import { Column, Entity, PrimaryColumn } from 'typeorm';
import type { ChunkSpace, RepositoryLayout } from '../../src/repositories/registry/repository.events';

@Entity({ name: 'rm_repositories' })
export class RepositoryView {
  @PrimaryColumn({ name: 'repository_id', type: 'uuid' })
  repositoryId: string;

  @Column({ type: 'text' })
  name: string;

  @Column({ type: 'text' })
  kind: 'local' | 'nfs' | 'cifs';

  @Column({ type: 'text' })
  root: string;

  @Column({ type: 'jsonb', nullable: true })
  source: Record<string, unknown> | null;

  @Column({ type: 'text' })
  status: 'active' | 'removed';

  @Column({ name: 'total_bytes', type: 'bigint', nullable: true })
  totalBytes: string | null;

  @Column({ name: 'free_bytes', type: 'bigint', nullable: true })
  freeBytes: string | null;

  @Column({ name: 'immutable_days', type: 'integer', nullable: true })
  immutableDays: number | null;

  /** Null on a repository registered before the setting existed: DEFAULT_MAX_CHAIN_DEPTH applies. */
  @Column({ name: 'max_chain_depth', type: 'integer', nullable: true })
  maxChainDepth: number | null;

  @Column({ type: 'text', default: 'qcow2' })
  layout: RepositoryLayout;

  /** A chunks repository's store as last measured (RepositoryChunksMeasured); null before the first measure and for qcow2. */
  @Column({ name: 'chunk_space', type: 'jsonb', nullable: true })
  chunkSpace: (ChunkSpace & { measuredAt: string }) | null;

  @Column({ name: 'last_collection', type: 'jsonb', nullable: true })
  lastCollection: { packsRemoved: number; packsRepacked: number; bytesFreed: number; durationMs: number; at: string } | null;

  /** The encrypted repository's key file and its fingerprint (sha256:<hex>); null: in the clear. */
  @Column({ type: 'jsonb', nullable: true })
  encryption: { keyFile: string; fingerprint: string } | null;

  @Column({ name: 'low_space', type: 'boolean' })
  lowSpace: boolean;

  @Column({ name: 'sampled_at', type: 'timestamptz', nullable: true })
  sampledAt: Date | null;

  @Column({ name: 'registered_at', type: 'timestamptz' })
  registeredAt: Date;
}
