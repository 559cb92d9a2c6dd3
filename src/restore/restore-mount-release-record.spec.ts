import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CommandBus, QueryBus } from '@nestjs/cqrs';
import type { HubConfig } from '../config/hub-config';
import type { HubLiveness } from '../projection-runner/hub-liveness';
import type { ProjectionsService } from '../projection-runner/projections.service';
import type { FilesInUse } from '../restore-points/files-in-use';
import { ReleaseRestoreMountCommand } from './commands/release-restore-mount.command';
import { LiveMounts } from './live-mounts';
import type { MountStories } from './mount-stories';
import type { RestoreMountState } from './restore-mount.aggregate';
import type { MountTarget } from './restore-mount.events';
import { RestoreMountWorkflow } from './restore-mount.workflow';

/**
 * A mount released by its idle timeout is taken down before its release is recorded. When that record fails (the
 * database away for a moment), the mount was left recorded `ready`, holding its point against deletes, until the
 * hub restarted: it is now recorded again until it is on record. The mounter and the buses are faked: what is tested
 * is the workflow's decision, not mounting.
 */
describe('a restore mount whose release could not be recorded', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'sendense-mount-release-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function workflow(failures: number) {
    const target = { mountId: 'm-1', restorePointId: 'rp-1', vmId: 'vm-1', repositoryId: 'repo-1', diskId: 'vda', file: '/x/vda.qcow2', chainFiles: ['/x/vda.qcow2'], hubInstance: 'hub-1' } as MountTarget;
    let state: RestoreMountState = { status: 'ready', target, volumes: [], wasReady: true, releaseReason: null };
    const tries: string[] = [];
    const commands = {
      execute: async (command: unknown) => {
        if (!(command instanceof ReleaseRestoreMountCommand)) throw new Error(`unexpected ${String(command)}`);
        tries.push(command.reason);
        if (tries.length <= failures) throw new Error('connection terminated unexpectedly');
        state = { ...state, status: 'released', releaseReason: command.reason };
        return { position: '1', eventIds: ['e-2'] };
      },
    } as unknown as CommandBus;
    const stories = { state: async () => state, of: async () => ({ correlationId: 'c-1', lastEventId: 'e-1' }) } as unknown as MountStories;
    const config = { dataDir: dir, restoreIdleMs: 60_000, goneHubAfterMs: 60_000, goneHubCheckMs: 60_000 } as HubConfig;
    const live = new LiveMounts(config);
    const unmounted: string[] = [];
    const wf = new RestoreMountWorkflow(config, 'hub-1', commands, {} as QueryBus, live, stories, {} as ProjectionsService, { register: () => undefined } as unknown as FilesInUse, {} as HubLiveness);
    Object.assign(wf as unknown as Record<string, unknown>, { mounter: { unmount: async (mountId: string) => (unmounted.push(mountId), { warnings: [] }) } });
    const held = live.hold(target, { eventId: 'e-1', correlationId: 'c-1' });
    held.mounted = { partitionTable: 'none', diskSize: 1, volumes: [] } as unknown as typeof held.mounted;
    const release = () => (wf as unknown as { release(id: string, reason: string, detail: string): Promise<void> }).release('m-1', 'idle-timeout', 'no access for 60 s');
    return { wf, tries, unmounted, release, state: () => state };
  }

  it('is recorded again until it is on record, so the mount no longer reads as ready', async () => {
    const { wf, tries, unmounted, release, state } = workflow(2);
    await expect(release()).rejects.toThrow(/connection terminated/);
    expect(unmounted).toEqual(['m-1']);
    for (const deadline = Date.now() + 20_000; state().status !== 'released'; await new Promise((r) => setTimeout(r, 20))) if (Date.now() > deadline) throw new Error('never recorded');
    expect(tries).toEqual(['idle-timeout', 'idle-timeout', 'idle-timeout']);
    expect(state().releaseReason).toBe('idle-timeout');
    await wf.onModuleDestroy();
  });

  it('stops trying when the hub stops, without waiting out the next try (its next start records it)', async () => {
    const { wf, tries, release } = workflow(Infinity);
    await expect(release()).rejects.toThrow(/connection terminated/);
    const started = Date.now();
    await wf.onModuleDestroy();
    expect(Date.now() - started).toBeLessThan(500);
    expect(tries).toEqual(['idle-timeout']);
  });
});
