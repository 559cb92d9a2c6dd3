import type { QueryBus } from '@nestjs/cqrs';
import type { HubConfig } from '../config/hub-config';
import type { NbdExportsService } from '../nbd/exports/nbd-exports.service';
import type { CommandGateway } from '../projection-runner/command-gateway';
import type { HubLiveness } from '../projection-runner/hub-liveness';
import type { ProjectionsService } from '../projection-runner/projections.service';
import type { RepositoriesService } from '../repositories/registry/repositories.service';
import type { ChainStates } from '../restore-points/chain-states';
import { GetRestorePointQuery } from '../restore-points/queries/get-restore-point.query';
import { ClosePointExportCommand } from './commands/close-point-export.command';
import { OpenPointExportCommand } from './commands/open-point-export.command';
import type { PointExportStates } from './point-export-states';
import { PointExportWorkflow } from './point-export.workflow';
import { OpenPointExportsByQuery } from './queries/point-exports.query';

/**
 * A point export of two disks whose first disk's qemu-nbd ends while the second starts: the exit was told to
 * nobody (it looks for an open export, and this one was not open yet), so the export was recorded open with a
 * disk that no longer served, holding its ports and its point until someone closed it. The NBD exports and the
 * buses are faked: what is tested is the workflow's decision.
 */
describe('a point export whose disk ends while it is opened', () => {
  it('is closed again (qemu-nbd-exited) and the request fails saying which disk, its other disks stopped', async () => {
    const running = new Set<string>();
    const stopped: string[] = [];
    let onExit: (leaseId: string, detail: string) => void = () => undefined;
    const nbd = {
      onUnexpectedExit: (listener: typeof onExit) => (onExit = listener),
      startAndShow: async ({ diskId }: { diskId: string }) => {
        const leaseId = `lease-${diskId}`;
        running.add(leaseId);
        if (diskId === 'vdb') {
          // vda's qemu-nbd dies as vdb's starts: NbdExportsService releases its lease and tells the listeners
          running.delete('lease-vda');
          onExit('lease-vda', 'exit code 1');
        }
        return { leaseId, port: diskId === 'vda' ? 10809 : 10810, exportName: diskId, pid: 1, psk: { identity: 'x', key: '00' } };
      },
      isRunning: (leaseId: string) => running.has(leaseId),
      stopAndShow: async (leaseId: string) => (stopped.push(leaseId), running.delete(leaseId)),
    } as unknown as NbdExportsService;
    const executed: unknown[] = [];
    const gateway = { execute: async (command: unknown) => (executed.push(command), { position: '1' }) } as unknown as CommandGateway;
    const queries = {
      execute: async (query: unknown) => {
        if (query instanceof OpenPointExportsByQuery) return 0;
        if (query instanceof GetRestorePointQuery) return { restorePointId: 'rp-1', vmId: 'vm-1', repositoryId: 'repo-1' };
        throw new Error(`unexpected query ${String(query)}`);
      },
    } as unknown as QueryBus;
    const disks = [
      { diskId: 'vda', file: 'vm-1/rp-1-vda.qcow2' },
      { diskId: 'vdb', file: 'vm-1/rp-1-vdb.qcow2' },
    ];
    const chains = { load: async () => ({ points: [{ restorePointId: 'rp-1', parentId: null, disks }], pending: null }) } as unknown as ChainStates;
    const repositories = { usable: async () => ({ root: '/repo' }) } as unknown as RepositoriesService;
    const config = { nbdBind: '127.0.0.1', goneHubAfterMs: 60_000, goneHubCheckMs: 60_000 } as HubConfig;
    const wf = new PointExportWorkflow(config, 'hub-1', gateway, queries, {} as ProjectionsService, chains, repositories, nbd, {} as PointExportStates, {} as HubLiveness);

    await expect(wf.openExport('rp-1', true, undefined, '127.0.0.1')).rejects.toThrow(/^the export of restore point rp-1 was closed again: the qemu-nbd of disk vda ended while the export was opened/);
    expect(executed.map((c) => (c as object).constructor.name)).toEqual([OpenPointExportCommand.name, ClosePointExportCommand.name]);
    const close = executed[1] as ClosePointExportCommand;
    expect(close).toMatchObject({ exportId: (executed[0] as OpenPointExportCommand).openedExport.exportId, reason: 'qemu-nbd-exited' });
    expect(stopped).toEqual(['lease-vdb']);
    expect(running.size).toBe(0);
  });
});
