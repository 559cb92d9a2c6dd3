import { fold } from '../eventing/aggregate';
import { exportUri, isLoopback, plainExportRefusal, PointExportCommand, pointExportAggregate as agg } from './point-export.aggregate';
import { PointExportEvent, PointExportOpenedData } from './point-export.events';

const opened = (tls: boolean, diskIds = ['disk0', 'disk1']): PointExportOpenedData => ({
  exportId: '7f1c5a52-1d2e-4c8b-9d7e-0a1b2c3d4e5f',
  restorePointId: 'rp-1',
  vmId: 'vm1',
  repositoryId: 'e3b0c442-98fc-4c14-9afb-f4c8996fb924',
  hubInstance: 'hub-a',
  tls,
  disks: diskIds.map((diskId, i) => ({ diskId, file: `/repo/vm1/${diskId}/rp-1.qcow2`, leaseId: `lease-${i}`, port: 10100 + i, host: '10.0.0.5', exportName: `pe-x-${diskId}` })),
});

function run(commands: PointExportCommand[], events: PointExportEvent[] = []): PointExportEvent[] {
  for (const c of commands) events.push(...agg.decide(c, fold(agg, events)));
  return events;
}

describe('point export rules', () => {
  it('given nothing, when opened with TLS on any bind address, then PointExportOpened with every disk', () => {
    const events = run([{ kind: 'open', export: opened(true), nbdBind: '0.0.0.0' }]);
    expect(events).toEqual([{ type: 'PointExportOpened', data: opened(true) }]);
    expect(fold(agg, events)).toMatchObject({ status: 'open', opened: { disks: [{ diskId: 'disk0' }, { diskId: 'disk1' }] } });
  });

  it('refuses a plain export unless the NBD bind address is loopback, saying why', () => {
    expect(() => run([{ kind: 'open', export: opened(false), nbdBind: '0.0.0.0' }])).toThrow(/plain export \(tls: false\) is refused because SENDENSE_NBD_BIND is 0.0.0.0, not a loopback address/);
    expect(() => run([{ kind: 'open', export: opened(false), nbdBind: '192.168.1.4' }])).toThrow(/SENDENSE_NBD_BIND is 192.168.1.4/);
    expect(run([{ kind: 'open', export: opened(false), nbdBind: '127.0.0.1' }])[0].type).toBe('PointExportOpened');
    expect(run([{ kind: 'open', export: opened(false), nbdBind: '::1' }])[0].type).toBe('PointExportOpened');
    expect(plainExportRefusal(true, '0.0.0.0')).toBeNull();
    expect([isLoopback('127.0.0.1'), isLoopback('127.3.2.1'), isLoopback('::1'), isLoopback('0.0.0.0'), isLoopback('::'), isLoopback('128.0.0.1')]).toEqual([true, true, true, false, false, false]);
  });

  it('refuses an export without disks, one naming a disk twice, and opening the same export twice', () => {
    expect(() => run([{ kind: 'open', export: opened(true, []), nbdBind: '0.0.0.0' }])).toThrow(/at least one disk/);
    expect(() => run([{ kind: 'open', export: opened(true, ['disk0', 'disk0']), nbdBind: '0.0.0.0' }])).toThrow(/exported once/);
    const once = run([{ kind: 'open', export: opened(true), nbdBind: '0.0.0.0' }]);
    expect(() => run([{ kind: 'open', export: opened(true), nbdBind: '0.0.0.0' }], once)).toThrow(/already opened/);
  });

  it('closes once with its reason; closing again appends nothing; closing an unknown export is not found', () => {
    const once = run([{ kind: 'open', export: opened(true), nbdBind: '0.0.0.0' }, { kind: 'close', reason: 'requested', detail: null }]);
    expect(once.at(-1)).toEqual({ type: 'PointExportClosed', data: { exportId: opened(true).exportId, reason: 'requested', detail: null } });
    expect(run([{ kind: 'close', reason: 'hub-restart', detail: 'gone' }], [...once])).toHaveLength(once.length);
    expect(fold(agg, once)).toMatchObject({ status: 'closed', closeReason: 'requested' });
    expect(() => run([{ kind: 'close', reason: 'requested', detail: null }])).toThrow(/no such restore point export/);
  });

  it('names the export as NBD URIs: nbds:// with TLS, IPv6 hosts in brackets, the name escaped', () => {
    expect(exportUri('10.0.0.5', 10100, 'pe-x-disk0', true)).toBe('nbds://10.0.0.5:10100/pe-x-disk0');
    expect(exportUri('127.0.0.1', 10101, 'pe-x-disk0', false)).toBe('nbd://127.0.0.1:10101/pe-x-disk0');
    expect(exportUri('fd00::5', 10102, 'a b', true)).toBe('nbds://[fd00::5]:10102/a%20b');
  });
});
