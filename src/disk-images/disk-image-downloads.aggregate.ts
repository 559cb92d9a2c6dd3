import { Aggregate } from '../eventing/aggregate';
import { DomainError } from '../eventing/domain-error';
import { DISK_IMAGE_DOWNLOADED, DiskImageDownload, DiskImageEvent } from './disk-image.events';

export interface DiskImageDownloadsState {
  downloads: number;
  bytes: number;
}

export type DiskImageDownloadsCommand = { kind: 'record'; download: DiskImageDownload };

/** The audit of one point's image downloads; the only rule is that a record describes a possible download. */
export const diskImageDownloadsAggregate: Aggregate<DiskImageDownloadsState, DiskImageDownloadsCommand, DiskImageEvent> = {
  initialState: () => ({ downloads: 0, bytes: 0 }),

  evolve(state, event) {
    switch (event.type) {
      case DISK_IMAGE_DOWNLOADED:
        return { downloads: state.downloads + 1, bytes: state.bytes + event.data.bytes };
    }
  },

  decide(command) {
    const d = command.download;
    if (!Number.isSafeInteger(d.bytes) || d.bytes < 0) throw new DomainError('invalid', `bytes must be a non-negative integer, got ${d.bytes}`);
    if (!Number.isSafeInteger(d.size) || d.size < 0) throw new DomainError('invalid', `size must be a non-negative integer, got ${d.size}`);
    const wanted = d.range === null ? d.size : rangeLength(d.range);
    if (wanted === null) throw new DomainError('invalid', `range must be bytes=FIRST-LAST, got ${JSON.stringify(d.range)}`);
    if (d.bytes > wanted) throw new DomainError('invalid', `${d.bytes} bytes cannot have left for an answer of ${wanted} bytes`);
    if (d.completed && d.bytes !== wanted) throw new DomainError('invalid', `a completed download sent every byte of its answer (${wanted}), not ${d.bytes}`);
    return [{ type: DISK_IMAGE_DOWNLOADED, data: { ...d, error: d.completed ? null : d.error } }];
  },
};

function rangeLength(range: string): number | null {
  const m = /^bytes=(\d+)-(\d+)$/.exec(range);
  if (!m || Number(m[2]) < Number(m[1])) return null;
  return Number(m[2]) - Number(m[1]) + 1;
}
