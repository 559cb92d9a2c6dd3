/** What the API says about a repository: the read model plus the capacity measured right now. */
export interface RepositoryDetails {
  repositoryId: string;
  name: string;
  kind: 'local' | 'nfs' | 'cifs';
  path: string;
  source: Record<string, unknown> | null;
  /** Days each restore point stays immutable after it was written; null: none. */
  immutableDays: number | null;
  /** How its points are stored: qcow2 chains, or a chunk store (docs/design/storage.md). */
  layout: 'qcow2' | 'chunks';
  /** The most restore points one chain may hold before a backup starts a new one with a synthetic full; null in a chunks repository, whose points are whole. */
  maxChainDepth: number | null;
  /** Where the hub reads the key of an encrypted repository, and the key's SHA-256 (never the key); null: in the clear. */
  encryption: { keyFile: string; keyFingerprint: string } | null;
  /**
   * A chunks repository's saving, as last measured (after each backup, delete and collection); null for qcow2.
   * logicalBytes: what its points protect (blocks that are not zeros, each point whole); uniqueBytes: the same, each
   * distinct block once; storedBytes: every file of its store; garbageBytes: chunks no point names (collectableBytes
   * of it in packs the next collection removes whole); the ratios null until there is something to divide.
   */
  chunks: {
    measuredAt: string | null;
    pointDisks: number;
    logicalBytes: number;
    uniqueBytes: number;
    storedBytes: number;
    garbageBytes: number;
    collectableBytes: number;
    deduplication: number | null;
    compression: number | null;
    reduction: number | null;
    lastCollection: { packsRemoved: number; packsRepacked: number; bytesFreed: number; durationMs: number; at: string } | null;
  } | null;
  totalBytes: number | null;
  freeBytes: number | null;
  /** The filesystem's used space; for a tenant's token, the size of its own points' files (others' stay unseen). */
  usedBytes: number | null;
  /**
   * The space of its points: the sum of their disks' files as recorded, recycled points included (their files stay
   * until purged); for a tenant's token, of its own VMs' points. Two repositories on one filesystem each count their own.
   */
  pointsBytes: number;
  /** How fast pointsBytes grew over the last 30 days (least squares); null with less than an hour of history, and for a tenant's token. */
  growthBytesPerDay: number | null;
  /** When the points, growing at that pace, take up freeBytes (ISO); null when they do not grow, freeBytes is unknown, or for a tenant's token. */
  estimatedFullAt: string | null;
  lowSpace: boolean;
  /** Restore points the repository holds (of the caller's tenant, for a tenant's token: a repository may hold several tenants' VMs). */
  restorePoints: number;
  registeredAt: Date;
}
