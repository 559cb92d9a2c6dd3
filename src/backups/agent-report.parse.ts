import { AgentReport, Consistency } from '../wire/backup-protocol';
import { DomainError } from '../eventing/domain-error';
import { IDENTIFIER_PATTERN as ID, printable } from '../wire/identifiers';

/** Agent reports are hostile input like any other body: every field is checked. */
export function parseAgentReport(body: Record<string, unknown>): AgentReport {
  const num = (k: string) => {
    const v = body[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new DomainError('invalid', `${k} must be a non-negative number`);
    return v;
  };
  // byte counts and durations land in bigint columns of the read models: a fraction there stopped their projection for good
  const whole = (k: string) => {
    const v = num(k);
    if (!Number.isSafeInteger(v)) throw new DomainError('invalid', `${k} must be a whole number`);
    return v;
  };
  const text = (k: string, max: number, absent: string | null) => {
    const v = body[k];
    if (v === undefined || v === null) return absent;
    if (typeof v !== 'string') throw new DomainError('invalid', `${k} must be a string`);
    // shown to operators (a job's error): without what would drive their terminal
    return printable(v.slice(0, max));
  };
  const id = (k: string) => {
    const v = body[k];
    if (typeof v !== 'string' || !ID.test(v)) throw new DomainError('invalid', `${k} must be an id`);
    return v;
  };
  switch (body.type) {
    case 'snapshot-created': {
      const ids = body.diskIds;
      if (!Array.isArray(ids) || ids.length === 0 || ids.some((d) => typeof d !== 'string' || !ID.test(d))) throw new DomainError('invalid', 'diskIds must be a non-empty list of ids');
      return { type: 'snapshot-created', snapshotId: id('snapshotId'), diskIds: ids as string[], ...consistency(body) };
    }
    case 'transfer-started':
      return { type: 'transfer-started', diskId: id('diskId'), bytesPlanned: whole('bytesPlanned') };
    case 'transfer-progressed':
      return { type: 'transfer-progressed', diskId: id('diskId'), bytesDone: whole('bytesDone'), bytesPlanned: whole('bytesPlanned'), rate: num('rate') };
    case 'transfer-completed': {
      const changeRef = text('changeRef', 256, null);
      const known = body.bytesKnown === undefined ? {} : { bytesKnown: whole('bytesKnown') };
      return { type: 'transfer-completed', diskId: id('diskId'), bytesWritten: whole('bytesWritten'), bytesZeroed: whole('bytesZeroed'), bytesPlanned: whole('bytesPlanned'), durationMs: whole('durationMs'), changeRef, ...known };
    }
    case 'snapshot-removed':
      return { type: 'snapshot-removed', snapshotId: id('snapshotId') };
    case 'finished':
      return { type: 'finished' };
    case 'failed':
      return { type: 'failed', reason: text('reason', 2000, 'unknown')! };
    default:
      throw new DomainError('invalid', 'type must be one of snapshot-created, transfer-started, transfer-progressed, transfer-completed, snapshot-removed, finished, failed');
  }
}

/** Optional on snapshot-created: all three fields or none. */
function consistency(body: Record<string, unknown>): Partial<Consistency> {
  if (body.consistency === undefined) return {};
  if (body.consistency !== 'application' && body.consistency !== 'crash') throw new DomainError('invalid', 'consistency must be application or crash');
  const reason = body.consistencyReason;
  if (reason !== null && reason !== undefined && typeof reason !== 'string') throw new DomainError('invalid', 'consistencyReason must be a string or null');
  const freezeMs = body.freezeMs;
  if (freezeMs !== null && freezeMs !== undefined && (typeof freezeMs !== 'number' || !Number.isFinite(freezeMs) || freezeMs < 0)) throw new DomainError('invalid', 'freezeMs must be a non-negative number or null');
  return { consistency: body.consistency, consistencyReason: typeof reason === 'string' ? reason.slice(0, 2000) : null, freezeMs: typeof freezeMs === 'number' ? Math.round(freezeMs) : null };
}
