import { parseRestoreRequest } from './restore-request.parse';

const config = { schemaVersion: 1, kind: 'libvirt', domainXml: "<domain type='kvm'><name>web</name></domain>", nvram: null, tpm: null, capturedAt: '2026-11-23T10:00:00.000Z' };
const disk = { diskId: 'vda', virtualSize: 1048576, digests: true, nbd: { port: 14000, exportName: 'r-vda', psk: { identity: 'sendense', key: 'ab'.repeat(32) } } };
const request = {
  restoreId: '0b9bd5a4-61c9-4a55-9d5c-2f0c4e7b3a11',
  correlationId: 'c-1',
  causationId: '5d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
  restorePointId: 'rp-1',
  vmId: 'vm-1',
  mode: 'full',
  target: { kind: 'new-domain', name: 'web2', storageDir: '/var/lib/libvirt/images', start: true },
  configuration: config,
  definition: null,
  disks: [disk],
};

describe("the hub's restore request, as the agent reads it", () => {
  it('reads a start with exports and a check without them', () => {
    expect(parseRestoreRequest(request, true)).toEqual(request);
    const { nbd: _nbd, ...checkDisk } = disk;
    const { causationId: _cause, ...check } = request;
    expect(parseRestoreRequest({ ...check, disks: [checkDisk] }, false)).toEqual({ ...check, disks: [checkDisk] });
    expect(parseRestoreRequest({ ...request, target: { kind: 'replace', vmId: 'vm-1' } }, true).target).toEqual({ kind: 'replace', vmId: 'vm-1' });
  });

  it.each([
    [{ target: { kind: 'new-domain', name: 'a/b', storageDir: null, start: false } }, /target.name/],
    [{ target: { kind: 'new-domain', name: 'a', storageDir: '/x/../etc', start: false } }, /storageDir/],
    // the hub's bounds, held here too: an agent's own reports name files under the dir, and the hub refuses those past its limits
    [{ target: { kind: 'new-domain', name: 'a', storageDir: `/srv/${'a/'.repeat(600)}x`, start: false } }, /target.storageDir must be at most 1024 characters/],
    [{ target: { kind: 'new-domain', name: 'a', storageDir: `/srv/${'s'.repeat(256)}`, start: false } }, /target.storageDir segments must be at most 255 characters each/],
    [{ target: { kind: 'new-domain', name: 'a', storageDir: '/sys/kernel', start: false } }, /target.storageDir may not be in \/proc, \/sys or \/dev/],
    // virsh would look these up as a domain id and a uuid: another domain than the one this restore defines
    [{ target: { kind: 'new-domain', name: '1', storageDir: null, start: false } }, /must not be all digits or a uuid/],
    [{ target: { kind: 'new-domain', name: '6f1c2a9e-3b4d-4e5f-8a6b-7c8d9e0f1a2b', storageDir: null, start: false } }, /must not be all digits or a uuid/],
    [{ target: { kind: 'new-domain', name: '6f1c2a9e3b4d4e5f8a6b7c8d9e0f1a2b', storageDir: null, start: false } }, /must not be all digits or a uuid/],
    [{ target: { kind: 'elsewhere' } }, /target.kind/],
    [{ configuration: { ...config, domainXml: 'rm -rf /' } }, /configuration: domainXml/],
    [{ definition: { memoryMiB: 0, vcpus: 1 } }, /definition/],
    [{ disks: [{ ...disk, nbd: { ...disk.nbd, psk: { identity: 'x', key: 'short' } } }] }, /psk/],
    [{ disks: [] }, /non-empty/],
    [{ mode: 'full', target: { kind: 'drill', timeoutSeconds: 60 } }, /a drill boots instantly/],
    [{ mode: 'instant', target: { kind: 'replace', vmId: 'vm-1' } }, /replace needs mode full/],
    [{ mode: 'copy' }, /mode must be full or instant/],
    [{ causationId: undefined }, /causationId must be an event id/],
    [{ causationId: 'RestoreStarted' }, /causationId must be an event id/],
  ])('refuses %j', (change, message) => {
    expect(() => parseRestoreRequest({ ...request, ...change }, true)).toThrow(message);
  });
});
