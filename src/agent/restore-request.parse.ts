import { VALID_CORRELATION_ID, VALID_EVENT_ID } from '../wire/backup-protocol';
import type { RestoreCheckRequest, RestoreStartRequest } from '../wire/restore-protocol';
import { ConfigurationFormatError, parseVmConfiguration } from '../wire/vm-configuration';
import { DOMAIN_LOOKUP_FORM, DOMAIN_LOOKUP_FORM_MESSAGE, IDENTIFIER_PATTERN as ID } from '../wire/identifiers';
import { storageDirProblem } from '../wire/storage-dir';

/** libvirt accepts more, but a domain name also becomes part of file names here. */
export const DOMAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const PSK_IDENTITY = /^[A-Za-z0-9._-]{1,64}$/;
const PSK_KEY = /^(?:[0-9a-f]{2}){32,64}$/;

export class RestoreRequestError extends Error {}

/** The hub's restore request, checked field by field before anything on this host is touched; a check carries no exports. */
export function parseRestoreRequest(body: Record<string, unknown>, withExports: false): RestoreCheckRequest;
export function parseRestoreRequest(body: Record<string, unknown>, withExports: true): RestoreStartRequest;
export function parseRestoreRequest(body: Record<string, unknown>, withExports: boolean): RestoreCheckRequest | RestoreStartRequest {
  const fail = (message: string): never => {
    throw new RestoreRequestError(message);
  };
  const id = (value: unknown, field: string) => (typeof value === 'string' && ID.test(value) ? value : fail(`${field} must be 1-128 characters of A-Z a-z 0-9 . _ -`));
  if (typeof body.correlationId !== 'string' || !VALID_CORRELATION_ID.test(body.correlationId)) fail('correlationId must be 1-128 characters of A-Z a-z 0-9 . _ : -');
  // a check is asked before anything is recorded: only a start names the hub event its reports answer
  if (withExports && (typeof body.causationId !== 'string' || !VALID_EVENT_ID.test(body.causationId))) fail('causationId must be an event id (a lowercase UUID)');
  if (body.mode !== 'full' && body.mode !== 'instant') fail('mode must be full or instant');
  const t = body.target as Record<string, unknown> | undefined;
  let target: RestoreStartRequest['target'];
  if (t?.kind === 'new-domain') {
    if (typeof t.name !== 'string' || !DOMAIN_NAME.test(t.name)) fail('target.name must be 1-64 characters of A-Z a-z 0-9 . _ -');
    if (DOMAIN_LOOKUP_FORM.test(t.name as string)) fail(`target.${DOMAIN_LOOKUP_FORM_MESSAGE}`);
    const dir = t.storageDir ?? null;
    if (dir !== null) {
      if (typeof dir !== 'string') fail('target.storageDir must be a string');
      const problem = storageDirProblem(dir as string);
      if (problem) fail(`target.${problem}`);
    }
    if (typeof t.start !== 'boolean') fail('target.start must be a boolean');
    target = { kind: 'new-domain', name: t.name as string, storageDir: dir as string | null, start: t.start as boolean };
  } else if (t?.kind === 'replace') {
    target = { kind: 'replace', vmId: id(t.vmId, 'target.vmId') };
  } else if (t?.kind === 'drill') {
    if (!Number.isInteger(t.timeoutSeconds) || (t.timeoutSeconds as number) < 1 || (t.timeoutSeconds as number) > 3600) fail('target.timeoutSeconds must be 1-3600');
    target = { kind: 'drill', timeoutSeconds: t.timeoutSeconds as number };
  } else {
    return fail('target.kind must be new-domain, replace or drill');
  }
  if (target.kind === 'drill' && body.mode !== 'instant') fail('a drill boots instantly (mode instant)');
  if (target.kind === 'replace' && body.mode === 'instant') fail('instant recovery makes a new domain: replace needs mode full');
  let configuration: RestoreStartRequest['configuration'] = null;
  if (body.configuration !== null) {
    try {
      configuration = parseVmConfiguration(JSON.stringify(body.configuration));
    } catch (error) {
      fail(`configuration: ${(error as ConfigurationFormatError).message}`);
    }
  }
  const def = body.definition as { memoryMiB?: unknown; vcpus?: unknown } | null;
  let definition: RestoreStartRequest['definition'] = null;
  if (def !== null && def !== undefined) {
    const int = (v: unknown, max: number) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= max;
    if (!int(def.memoryMiB, 4 * 1024 * 1024) || !int(def.vcpus, 1024)) fail('definition must be {memoryMiB, vcpus} as positive integers');
    definition = { memoryMiB: def.memoryMiB as number, vcpus: def.vcpus as number };
  }
  if (!Array.isArray(body.disks) || body.disks.length === 0) fail('disks must be a non-empty array');
  const disks = (body.disks as Record<string, any>[]).map((d) => {
    if (!Number.isSafeInteger(d?.virtualSize) || d.virtualSize <= 0) fail('disks[].virtualSize must be a positive integer');
    if (typeof d.digests !== 'boolean') fail('disks[].digests must be a boolean');
    if (d.requiredBytes !== undefined && (!Number.isSafeInteger(d.requiredBytes) || d.requiredBytes < 0)) fail('disks[].requiredBytes must be a byte count');
    const disk = { diskId: id(d.diskId, 'diskId'), virtualSize: d.virtualSize as number, digests: d.digests as boolean, ...(d.requiredBytes !== undefined ? { requiredBytes: d.requiredBytes as number } : {}) };
    if (!withExports) return disk;
    const port = d?.nbd?.port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) fail('disks[].nbd.port must be a TCP port');
    if (typeof d.nbd.exportName !== 'string' || d.nbd.exportName.length > 256) fail('disks[].nbd.exportName must be a string');
    const { identity, key } = d.nbd.psk ?? {};
    if (typeof identity !== 'string' || !PSK_IDENTITY.test(identity) || typeof key !== 'string' || !PSK_KEY.test(key)) fail('disks[].nbd.psk must be { identity, key } with key as 64-128 hex digits');
    return { ...disk, nbd: { port, exportName: d.nbd.exportName as string, psk: { identity, key } } };
  });
  const story = { correlationId: body.correlationId as string, ...(withExports ? { causationId: body.causationId as string } : {}) };
  return { restoreId: id(body.restoreId, 'restoreId'), ...story, restorePointId: id(body.restorePointId, 'restorePointId'), vmId: id(body.vmId, 'vmId'), mode: body.mode as 'full' | 'instant', target, configuration, definition, disks };
}
