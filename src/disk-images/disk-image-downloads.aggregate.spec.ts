import { diskImageDownloadsAggregate as agg } from './disk-image-downloads.aggregate';
import { DiskImageDownload } from './disk-image.events';

const download = (over: Partial<DiskImageDownload> = {}): DiskImageDownload => ({
  restorePointId: 'rp-1',
  vmId: 'vm1',
  repositoryId: 'r',
  diskId: 'disk0',
  format: 'raw',
  bytes: 1000,
  size: 1000,
  range: null,
  completed: true,
  integrity: 'verified',
  forced: false,
  actor: 'admin',
  error: null,
  ...over,
});

const decide = (d: DiskImageDownload) => agg.decide({ kind: 'record', download: d }, agg.initialState());

describe('disk image download audit', () => {
  it('records a whole download, a range, and one cut off with why', () => {
    expect(decide(download())).toEqual([{ type: 'DiskImageDownloaded', data: download() }]);
    expect(decide(download({ range: 'bytes=100-199', bytes: 100 }))[0].data).toMatchObject({ range: 'bytes=100-199', bytes: 100, completed: true });
    expect(decide(download({ bytes: 10, completed: false, error: 'the client went away' }))[0].data).toMatchObject({ completed: false, error: 'the client went away' });
    const state = agg.evolve(agg.evolve(agg.initialState(), decide(download())[0]), decide(download({ bytes: 5, completed: false, error: 'x' }))[0]);
    expect(state).toEqual({ downloads: 2, bytes: 1005 });
  });

  it('refuses records that describe no possible download', () => {
    expect(() => decide(download({ bytes: 999 }))).toThrow(/completed download sent every byte/);
    expect(() => decide(download({ bytes: 1001, completed: false }))).toThrow(/cannot have left/);
    expect(() => decide(download({ range: 'bytes=5-1' }))).toThrow(/range must be/);
    expect(() => decide(download({ bytes: -1 }))).toThrow(/non-negative/);
  });

  it('keeps no error on a completed download', () => {
    expect(decide(download({ error: 'stale' }))[0].data.error).toBeNull();
  });
});
