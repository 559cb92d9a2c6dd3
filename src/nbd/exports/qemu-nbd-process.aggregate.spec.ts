import { fold } from '../../eventing/aggregate';
import { qemuNbdProcessAggregate as proc, QemuNbdCommand } from './qemu-nbd-process.aggregate';
import { ExportTarget, QemuNbdEvent } from './qemu-nbd.events';

const target: ExportTarget = { leaseId: 'L', port: 10100, jobId: 'j', diskId: 'd', file: '/r/a.qcow2', format: 'qcow2', readOnly: false, exportName: 'j-d', bitmap: null, hubInstance: 'h' };

function apply(commands: QemuNbdCommand[]): QemuNbdEvent[] {
  const events: QemuNbdEvent[] = [];
  for (const c of commands) events.push(...proc.decide(c, fold(proc, events)));
  return events;
}

describe('qemu-nbd process rules', () => {
  it('records request, start, expected exit and stop in order', () => {
    const events = apply([
      { kind: 'requestStart', target },
      { kind: 'recordStarted', pid: 42, args: ['-f', 'qcow2'] },
      { kind: 'recordExit', pid: 42, code: 0, signal: null, stderrTail: '', expected: true },
      { kind: 'recordStopped' },
    ]);
    expect(events.map((e) => e.type)).toEqual(['QemuNbdStartRequested', 'QemuNbdStarted', 'QemuNbdExited', 'QemuNbdStopped']);
    expect(events[1].data).toMatchObject({ leaseId: 'L', pid: 42, port: 10100, file: '/r/a.qcow2', args: ['-f', 'qcow2'] });
    expect(fold(proc, events).phase).toBe('stopped');
  });

  it('ignores an exit reported twice and an exit after a failed start', () => {
    const exit: QemuNbdCommand = { kind: 'recordExit', pid: 42, code: null, signal: 'SIGKILL', stderrTail: 'x', expected: false };
    expect(apply([{ kind: 'requestStart', target }, { kind: 'recordStarted', pid: 42, args: [] }, exit, exit]).map((e) => e.type)).toEqual([
      'QemuNbdStartRequested',
      'QemuNbdStarted',
      'QemuNbdExited',
    ]);
    expect(apply([{ kind: 'requestStart', target }, { kind: 'recordStartFailed', reason: 'locked' }, exit]).map((e) => e.type)).toEqual([
      'QemuNbdStartRequested',
      'QemuNbdStartFailed',
    ]);
  });

  it('refuses a second start on one lease', () => {
    expect(() => apply([{ kind: 'requestStart', target }, { kind: 'requestStart', target }])).toThrow(/already had an export/);
  });
});
