import { Aggregate } from '../../eventing/aggregate';
import { DomainError } from '../../eventing/domain-error';
import {
  ExportTarget,
  QEMU_NBD_EXITED,
  QEMU_NBD_START_FAILED,
  QEMU_NBD_START_REQUESTED,
  QEMU_NBD_STARTED,
  QEMU_NBD_STOPPED,
  QemuNbdEvent,
} from './qemu-nbd.events';

export type QemuNbdPhase = 'none' | 'starting' | 'running' | 'exited' | 'stopped' | 'failed';

export interface QemuNbdProcessState {
  phase: QemuNbdPhase;
  target: ExportTarget | null;
  pid: number | null;
  args: string[];
}

export type QemuNbdCommand =
  | { kind: 'requestStart'; target: ExportTarget }
  | { kind: 'recordStarted'; pid: number; args: string[] }
  | { kind: 'recordStartFailed'; reason: string }
  | { kind: 'recordExit'; pid: number; code: number | null; signal: string | null; stderrTail: string; expected: boolean }
  | { kind: 'recordStopped' };

/** Whether the lease's port is (about to be) served by a qemu-nbd of some hub process. */
export function servesPort(state: QemuNbdProcessState): boolean {
  return state.phase === 'starting' || state.phase === 'running';
}

/** The life of one qemu-nbd process for one lease. Facts arriving late or twice change nothing. */
export const qemuNbdProcessAggregate: Aggregate<QemuNbdProcessState, QemuNbdCommand, QemuNbdEvent> = {
  initialState: () => ({ phase: 'none', target: null, pid: null, args: [] }),

  evolve(state, event) {
    switch (event.type) {
      case QEMU_NBD_START_REQUESTED:
        return { ...state, phase: 'starting', target: event.data as ExportTarget };
      case QEMU_NBD_STARTED:
        return { ...state, phase: 'running', pid: event.data.pid, args: event.data.args };
      case QEMU_NBD_START_FAILED:
        return { ...state, phase: 'failed' };
      case QEMU_NBD_EXITED:
        return { ...state, phase: 'exited' };
      case QEMU_NBD_STOPPED:
        return { ...state, phase: 'stopped' };
    }
  },

  decide(command, state) {
    const leaseId = state.target?.leaseId ?? '';
    switch (command.kind) {
      case 'requestStart':
        if (state.phase !== 'none') throw new DomainError('conflict', `lease ${command.target.leaseId} already had an export`);
        return [{ type: QEMU_NBD_START_REQUESTED, data: { ...command.target } }];
      case 'recordStarted':
        if (state.phase !== 'starting' || !state.target) return [];
        return [
          {
            type: QEMU_NBD_STARTED,
            data: { leaseId, pid: command.pid, port: state.target.port, file: state.target.file, exportName: state.target.exportName, args: command.args, hubInstance: state.target.hubInstance },
          },
        ];
      case 'recordStartFailed':
        return state.phase === 'starting' ? [{ type: QEMU_NBD_START_FAILED, data: { leaseId, reason: command.reason } }] : [];
      case 'recordExit':
        if (state.phase !== 'running') return [];
        return [{ type: QEMU_NBD_EXITED, data: { leaseId, pid: command.pid, code: command.code, signal: command.signal, stderrTail: command.stderrTail, expected: command.expected } }];
      case 'recordStopped':
        return state.phase === 'exited' || state.phase === 'running' ? [{ type: QEMU_NBD_STOPPED, data: { leaseId } }] : [];
    }
  },
};
