import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { RecordedEvent } from '../../src/event-store/event-store.port';
import { Projector } from '../../src/projection-runner/projector';
import { restoreAggregate, RestoreState } from '../../src/vm-restore/restore.aggregate';
import { RESTORE_REQUESTED, RESTORE_STREAM_PREFIX, RESTORE_TERMINAL_EVENTS, RestoreEvent, RestoreRequested } from '../../src/vm-restore/restore.events';
import { RestoreView } from './restore.entity';

const status = (s: RestoreState): RestoreView['status'] => (s.phase === 'completed' || s.phase === 'failed' || s.phase === 'cancelled' ? s.phase : 'running');

/** The restore's row is its decider's state after each event (one rule for what a restore is), plus what only the events tell. */
@Injectable()
export class RestoresProjector implements Projector {
  readonly name = 'restores';
  readonly filter = { streamPrefixes: [RESTORE_STREAM_PREFIX] };
  readonly tables = ['rm_restores'];

  async apply(event: RecordedEvent, manager: EntityManager): Promise<void> {
    const repo = manager.getRepository(RestoreView);
    const e = { type: event.type, data: event.data } as RestoreEvent;
    if (e.type === RESTORE_REQUESTED) {
      const d = (e as RestoreRequested).data;
      const state = restoreAggregate.evolve(restoreAggregate.initialState(), e);
      await repo.insert({ ...row(state), mode: d.mode, knownDamage: d.knownDamage, drill: null, correlationId: event.metadata.correlationId, requestedAt: event.createdAt, finishedAt: null, durationMs: null, error: null, damaged: [] });
      return;
    }
    const view = await repo.findOneBy({ restoreId: (event.data as { restoreId: string }).restoreId });
    if (!view) return;
    const state = restoreAggregate.evolve(toState(view), e);
    const ended = RESTORE_TERMINAL_EVENTS.includes(e.type);
    const failure =
      e.type === 'RestoreFailed' ? { error: e.data.reason, damaged: e.data.damaged }
      : e.type === 'RestoreCancelled' ? { error: 'cancelled' }
      : e.type === 'RecoveryDrillPassed' ? { drill: { passed: true, bootMs: e.data.bootMs, reason: null, consistency: e.data.consistency, screenshot: e.data.screenshot } }
      : e.type === 'RecoveryDrillFailed' ? { error: e.data.reason, drill: { passed: false, bootMs: null, reason: e.data.reason, consistency: null, screenshot: e.data.screenshot } }
      : {};
    await repo.update(
      { restoreId: view.restoreId },
      { ...row(state), ...failure, ...(ended ? { finishedAt: event.createdAt, durationMs: event.createdAt.getTime() - view.requestedAt.getTime() } : {}) },
    );
  }
}

function row(s: RestoreState) {
  return { restoreId: s.restoreId!, restorePointId: s.restorePointId!, vmId: s.vmId!, repositoryId: s.repositoryId!, agentId: s.agentId!, target: s.target!, status: status(s), phase: s.phase!, disks: Object.values(s.disks), domain: s.domain, stalled: s.stalled };
}

/** Enough of the decider's state to fold the next event into (exports are the workflow's, not the API's). */
function toState(v: RestoreView): RestoreState {
  return {
    ...restoreAggregate.initialState(),
    restoreId: v.restoreId,
    restorePointId: v.restorePointId,
    vmId: v.vmId,
    repositoryId: v.repositoryId,
    agentId: v.agentId,
    mode: v.mode,
    target: v.target,
    phase: v.phase,
    disks: Object.fromEntries(v.disks.map((d) => [d.diskId, d])),
    domain: v.domain,
    stalled: v.stalled,
  };
}
