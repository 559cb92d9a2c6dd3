export { copyDisk, planCopy, effectiveRequestSize, CopyAbortedError, DEFAULT_REQUESTS, DEFAULT_REQUEST_SIZE, DEFAULT_READ_SIZE } from './copy-disk';
export type { CopyDiskOptions, CopyProgress, CopySource, CopySummary } from './copy-disk';
export { alignPlan, dirtyRanges, planFull, planIncremental, splitRequests, DEFAULT_CLUSTER_SIZE } from './copy-plan';
export type { CopyOp } from './copy-plan';
export { nbdCopyCommand, parseNbdCopyArgs, NBD_COPY_USAGE, UsageError } from './nbd-copy.command';
export type { NbdCopyArgs, NbdCopyIo } from './nbd-copy.command';
export { borrowHasher, releaseHasher, sharedBuffer } from './block-hasher';
