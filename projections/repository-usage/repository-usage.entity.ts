import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * The bytes of each point a repository holds now: its disks' files as last recorded (a merge or a middle delete
 * rewrites the child's). The VM is kept so a tenant's share can be summed; the parent so a middle delete finds the
 * child whose files it rewrote.
 */
@Entity({ name: 'rm_repository_point_bytes' })
@Index(['repositoryId'])
export class RepositoryPointBytesView {
  @PrimaryColumn({ name: 'restore_point_id', type: 'text' })
  restorePointId: string;

  @Column({ name: 'repository_id', type: 'uuid' })
  repositoryId: string;

  @Column({ name: 'vm_id', type: 'text' })
  vmId: string;

  @Column({ name: 'parent_id', type: 'text', nullable: true })
  parentId: string | null;

  @Column({ type: 'bigint' })
  bytes: string;
}

/**
 * A repository's points' bytes over time: one row per repository and hour (UTC) in which its points changed, holding
 * the total after the hour's last change, so the history grows with the hours, not with the points.
 */
@Entity({ name: 'rm_repository_usage' })
export class RepositoryUsageView {
  @PrimaryColumn({ name: 'repository_id', type: 'uuid' })
  repositoryId: string;

  @PrimaryColumn({ type: 'timestamptz' })
  hour: Date;

  /** When the hour's last change was recorded. */
  @Column({ type: 'timestamptz' })
  at: Date;

  @Column({ name: 'used_bytes', type: 'bigint' })
  usedBytes: string;
}

/** A chunks repository's store as last measured (RepositoryChunksMeasured): every file of it, shared by its points. */
@Entity({ name: 'rm_repository_stored_bytes' })
export class RepositoryStoredBytesView {
  @PrimaryColumn({ name: 'repository_id', type: 'uuid' })
  repositoryId: string;

  @Column({ name: 'stored_bytes', type: 'bigint' })
  storedBytes: string;
}
