import { DomainError } from '../eventing/domain-error';
import type { RestoreReport } from '../wire/restore-protocol';
import { IDENTIFIER_PATTERN as ID, printable } from '../wire/identifiers';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const HEX = /^[0-9a-f]{64}$/;

/** An agent's report on a restore, checked field by field: it becomes events, and names files on the agent's host. */
export function parseRestoreReport(body: Record<string, unknown>): RestoreReport {
  const bad = (m: string): never => {
    throw new DomainError('invalid', m);
  };
  const id = (v: unknown, f: string) => (typeof v === 'string' && ID.test(v) ? v : bad(`${f} must be 1-128 characters of A-Z a-z 0-9 . _ -`));
  const count = (v: unknown, f: string) => (Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : bad(`${f} must be a non-negative integer`));
  const text = (v: unknown, f: string, max: number) => (typeof v === 'string' && v.length > 0 && v.length <= max && !v.includes('\0') ? v : bad(`${f} must be a string of 1-${max} characters`));
  switch (body.type) {
    case 'restore-started':
      if (!Array.isArray(body.disks)) bad('disks must be an array');
      return { type: 'restore-started', disks: (body.disks as Record<string, unknown>[]).map((d) => ({ diskId: id(d?.diskId, 'diskId'), path: text(d?.path, 'path', 4096) })) };
    case 'disk-progressed':
      return { type: 'disk-progressed', diskId: id(body.diskId, 'diskId'), bytesDone: count(body.bytesDone, 'bytesDone'), bytesPlanned: count(body.bytesPlanned, 'bytesPlanned'), rate: count(body.rate, 'rate') };
    case 'disk-completed':
      return {
        type: 'disk-completed',
        diskId: id(body.diskId, 'diskId'),
        bytesWritten: count(body.bytesWritten, 'bytesWritten'),
        bytesZeroed: count(body.bytesZeroed, 'bytesZeroed'),
        bytesPlanned: count(body.bytesPlanned, 'bytesPlanned'),
        durationMs: count(body.durationMs, 'durationMs'),
        verifiedBlocks: count(body.verifiedBlocks, 'verifiedBlocks'),
      };
    case 'domain-defined':
      return { type: 'domain-defined', name: text(body.name, 'name', 256), uuid: typeof body.uuid === 'string' && UUID.test(body.uuid) ? body.uuid : bad('uuid must be a uuid') };
    case 'instant-running':
      return { type: 'instant-running', name: text(body.name, 'name', 256), uuid: typeof body.uuid === 'string' && UUID.test(body.uuid) ? body.uuid : bad('uuid must be a uuid') };
    case 'copy-stalled':
      return { type: 'copy-stalled', reason: body.reason === null ? null : printable(text(body.reason, 'reason', 4000)) };
    case 'finished': {
      const d = body.domain as Record<string, unknown> | undefined;
      if (typeof d?.started !== 'boolean') bad('domain.started must be a boolean');
      return { type: 'finished', domain: { name: text(d?.name, 'domain.name', 256), uuid: typeof d?.uuid === 'string' && UUID.test(d.uuid) ? d.uuid : bad('domain.uuid must be a uuid'), started: d!.started as boolean } };
    }
    case 'failed': {
      if (!Array.isArray(body.damaged) || body.damaged.length > 1000) bad('damaged must be an array of at most 1000 blocks');
      const damaged = (body.damaged as Record<string, unknown>[]).map((b) => ({
        diskId: id(b?.diskId, 'damaged[].diskId'),
        offset: count(b.offset, 'damaged[].offset'),
        length: count(b.length, 'damaged[].length'),
        expected: typeof b.expected === 'string' && HEX.test(b.expected) ? b.expected : bad('damaged[].expected must be 64 hex digits'),
        actual: typeof b.actual === 'string' && HEX.test(b.actual) ? b.actual : bad('damaged[].actual must be 64 hex digits'),
      }));
      return { type: 'failed', reason: printable(text(body.reason, 'reason', 4000)), damaged };
    }
    case 'drill-finished': {
      if (typeof body.passed !== 'boolean') bad('passed must be a boolean');
      const bootMs = body.bootMs === null ? null : count(body.bootMs, 'bootMs');
      const reason = body.reason === null ? null : text(body.reason, 'reason', 4000);
      const s = body.screenshot as Record<string, unknown> | null;
      if (s !== null && (typeof s !== 'object' || !['image/png', 'image/x-portable-pixmap', 'text/plain'].includes(s.contentType as string) || typeof s.data !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(s.data))) bad('screenshot must be null or {contentType, data (base64)}');
      return { type: 'drill-finished', passed: body.passed as boolean, bootMs, reason, screenshot: s as { contentType: 'text/plain'; data: string } | null };
    }
    default:
      return bad('type must be one of restore-started, disk-progressed, disk-completed, domain-defined, finished, failed, drill-finished, instant-running, copy-stalled');
  }
}
