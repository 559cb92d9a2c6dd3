import { QueryBus } from '@nestjs/cqrs';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilesInUse } from '../restore-points/files-in-use';
import { RestorePoint } from '../restore-points/chain.events';
import { FoundPoint, PointView } from './adapters/point-view';
import { RestoreRecord } from './queries/restore.record';
import { UnfinishedRestoresHoldPoints } from './unfinished-restores-hold-points';

describe('an unfinished restore holds the files of its point', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'sendense-restore-hold-'));
    writeFileSync(join(root, 'p2-vda.qcow2'), '');
    writeFileSync(join(root, 'p1-vda.qcow2'), '');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const point = (restorePointId: string, file: string) => ({ restorePointId, disks: [{ diskId: 'vda', virtualSize: 1 << 20, file }] }) as unknown as RestorePoint;
  const restore = (restoreId: string, restorePointId: string) => ({ restoreId, restorePointId, vmId: 'vm', repositoryId: 'repo', status: 'running', phase: 'requested' }) as RestoreRecord;

  function holder(unfinished: RestoreRecord[], points: Record<string, RestorePoint>): FilesInUse {
    const filesInUse = new FilesInUse();
    const queries = { execute: async () => unfinished } as unknown as QueryBus;
    const view = new PointView(null as never, null as never);
    view.point = async (_vm, _repo, id) => (points[id] ? ({ point: points[id], lineage: [points[id]], root, deleting: null, corrupt: [] } as FoundPoint) : null);
    new UnfinishedRestoresHoldPoints(filesInUse, queries, view).onModuleInit();
    return filesInUse;
  }

  it('a delete touching the point of a restore that has not ended is refused, naming the restore; other files are free', async () => {
    const files = holder([restore('r1', 'p2')], { p2: point('p2', 'p2-vda.qcow2'), p1: point('p1', 'p1-vda.qcow2') });
    expect(await files.blocker([join(root, 'p1-vda.qcow2'), join(root, 'p2-vda.qcow2')])).toBe(`${join(root, 'p2-vda.qcow2')} is read by restore r1, which has not ended`);
    expect(await files.blocker([join(root, 'p1-vda.qcow2')])).toBeNull();
  });

  it('names the file as the delete does, its symlinks resolved', async () => {
    const real = mkdtempSync(join(tmpdir(), 'sendense-restore-hold-real-'));
    try {
      writeFileSync(join(real, 'x.qcow2'), '');
      symlinkSync(join(real, 'x.qcow2'), join(root, 'linked.qcow2'));
      const files = holder([restore('r2', 'p3')], { p3: point('p3', 'linked.qcow2') });
      expect(await files.blocker([join(real, 'x.qcow2')])).toContain('restore r2');
    } finally {
      rmSync(real, { recursive: true, force: true });
    }
  });

  it('a restore whose point is gone holds nothing', async () => {
    expect(await holder([restore('r3', 'gone')], {}).blocker([join(root, 'p2-vda.qcow2')])).toBeNull();
  });
});
