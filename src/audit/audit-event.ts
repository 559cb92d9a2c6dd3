import { RecordedEvent } from '../event-store/event-store.port';

export interface AuditEvent {
  eventId: string;
  streamId: string;
  type: string;
  revision: string;
  position: string;
  time: string;
  data: RecordedEvent['data'];
  metadata: RecordedEvent['metadata'];
}

export function toAuditEvent(e: RecordedEvent): AuditEvent {
  return {
    eventId: e.id,
    streamId: e.streamId,
    type: e.type,
    revision: e.revision.toString(),
    position: e.position,
    time: e.createdAt.toISOString(),
    data: e.data,
    metadata: e.metadata,
  };
}

/**
 * Fields that hold a secret or what is derived from one (ApiTokenIssued's and AdminTokenRotated's `tokenHash`, a
 * remote's `tokenSha256`): a hash of a token is what a thief checks a guess against, and what names the token in
 * every other event. Content digests (`digests`, `sha256` of a disk) are not secrets and stay.
 */
const SECRET_FIELD = /^(hash|secret|token|password|passphrase|psk|privateKey)$|(Hash|Secret|Token|Sha256|Password|Passphrase|Psk|PrivateKey)$/;
export const REDACTED = '[redacted]';

function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (!value || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, SECRET_FIELD.test(key) ? REDACTED : redact(v)]));
}

/** The event as a token that is not an admin reads it: every secret field, at any depth, replaced by REDACTED. */
export function redactSecrets(event: AuditEvent): AuditEvent {
  return { ...event, data: redact(event.data) as AuditEvent['data'], metadata: redact(event.metadata) as AuditEvent['metadata'] };
}
