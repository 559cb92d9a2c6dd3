import { execFileSync } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer, Server as HttpsServer } from 'node:https';
import { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { startVcsim, Vcsim } from '../../../../test/support/vcsim-lab';
import { child, childrenNamed, parseXml, textAt } from './xml';
import { MoRef, VsphereCertificateError, VsphereClient, VsphereFault, VsphereHttpError, VsphereOptions } from './vsphere-client';

jest.setTimeout(120_000);

let vcsim: Vcsim;
const clients: VsphereClient[] = [];
const options = (more: Partial<VsphereOptions> = {}): VsphereOptions => ({ sdkUrl: vcsim.url, user: vcsim.user, password: vcsim.password, thumbprint: vcsim.sha256, ...more });
async function connect(more: Partial<VsphereOptions> = {}): Promise<VsphereClient> {
  const client = await VsphereClient.connect(options(more));
  clients.push(client);
  return client;
}

beforeAll(async () => {
  vcsim = await startVcsim();
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.logout().catch(() => undefined)));
  await vcsim?.stop();
});

/** The sessions vcsim holds: a refused client must not have added one. */
async function sessionKeys(client: VsphereClient): Promise<string[]> {
  const answer = await client.invoke(
    'RetrievePropertiesEx',
    { type: 'PropertyCollector', value: 'propertyCollector' },
    '<specSet><propSet><type>SessionManager</type><pathSet>sessionList</pathSet></propSet><objectSet><obj type="SessionManager">SessionManager</obj></objectSet></specSet><options/>',
  );
  const val = child(child(child(child(answer, 'returnval'), 'objects'), 'propSet'), 'val');
  return childrenNamed(val, 'UserSession').map((s) => textAt(s, 'key')!).sort();
}

async function currentSessionKey(client: VsphereClient): Promise<string> {
  const answer = await client.invoke(
    'RetrievePropertiesEx',
    { type: 'PropertyCollector', value: 'propertyCollector' },
    '<specSet><propSet><type>SessionManager</type><pathSet>currentSession</pathSet></propSet><objectSet><obj type="SessionManager">SessionManager</obj></objectSet></specSet><options/>',
  );
  return textAt(child(child(child(answer, 'returnval'), 'objects'), 'propSet'), 'val', 'key')!;
}

interface Identity {
  key: Buffer;
  cert: Buffer;
  sha1: string;
  sha256: string;
}

/** A self-signed certificate for 127.0.0.1, not vcsim's. */
function selfSigned(): Identity {
  const dir = mkdtempSync(join(tmpdir(), 'sendense-vsphere-cert-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'k.pem', '-out', 'c.pem', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: 'pipe' });
    const cert = readFileSync(join(dir, 'c.pem'));
    const x509 = new X509Certificate(cert);
    return { key: readFileSync(join(dir, 'k.pem')), cert, sha1: x509.fingerprint, sha256: x509.fingerprint256 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A TLS server with a certificate of its own that records every byte a client sends it and never answers. */
async function impostor(identity: Identity): Promise<{ port: number; received: () => string; connections: () => number; close: () => Promise<void> }> {
  let received = '';
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = tls.createServer({ key: identity.key, cert: identity.cert }, (socket) => {
    socket.on('data', (d) => (received += d.toString('latin1')));
    socket.on('error', () => undefined);
  });
  server.on('connection', (socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    received: () => received,
    connections: () => connections,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('VsphereClient against vcsim', () => {
  it('connects with the server certificate pinned by SHA-256 or SHA-1, in any spelling, and keeps the session cookie', async () => {
    for (const thumbprint of [vcsim.sha256, vcsim.sha1, vcsim.sha1.replace(/:/g, '').toLowerCase()]) {
      const client = await connect({ thumbprint });
      expect(client.sessionCookie).toMatch(/^vmware_soap_session=[^;\s]+$/);
      expect(client.apiVersion).toBe('6.5');
      expect(await currentSessionKey(client)).toBeTruthy();
    }
  });

  it('refuses a certificate that is not the pinned one, and a self-signed one with nothing pinned, before a Login, naming its thumbprints', async () => {
    const watcher = await connect();
    const before = await sessionKeys(watcher);
    const wrong = await VsphereClient.connect(options({ thumbprint: 'AA:'.repeat(31) + 'AA' })).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(VsphereCertificateError);
    expect(wrong).toMatchObject({ sha1: vcsim.sha1, sha256: vcsim.sha256 });
    expect((wrong as Error).message).toContain(vcsim.sha1);
    expect((wrong as Error).message).toContain(vcsim.sha256);
    const unpinned = await VsphereClient.connect(options({ thumbprint: undefined })).catch((e: unknown) => e);
    expect(unpinned).toBeInstanceOf(VsphereCertificateError);
    expect((unpinned as Error).message).toMatch(/not trusted by this system .* no thumbprint is pinned/);
    expect((unpinned as Error).message).toContain(vcsim.sha256);
    expect(await sessionKeys(watcher)).toEqual(before);
  });

  it('sends not a byte, so no password, to a server whose certificate does not match', async () => {
    const identity = selfSigned();
    const server = await impostor(identity);
    try {
      const sdkUrl = `https://127.0.0.1:${server.port}/sdk`;
      const pinnedToVcsim = await VsphereClient.connect({ ...options(), sdkUrl }).catch((e: unknown) => e);
      expect(pinnedToVcsim).toBeInstanceOf(VsphereCertificateError);
      expect(pinnedToVcsim).toMatchObject({ sha1: identity.sha1, sha256: identity.sha256 });
      const unpinned = await VsphereClient.connect({ ...options({ thumbprint: undefined }), sdkUrl }).catch((e: unknown) => e);
      expect(unpinned).toBeInstanceOf(VsphereCertificateError);
      await new Promise((r) => setTimeout(r, 200));
      expect(server.connections()).toBe(2);
      expect(server.received()).toBe('');
      // the same server, pinned: it gets the request (and never answers): the check above did see bytes when sent
      const answerless = await VsphereClient.connect({ ...options({ thumbprint: identity.sha256, timeoutMs: 500 }), sdkUrl }).catch((e: unknown) => e);
      expect((answerless as Error).message).toMatch(/did not complete POST \/sdk \(RetrieveServiceContent\) within 500 ms/);
      expect(server.received()).toContain('RetrieveServiceContent');
      expect(server.received()).not.toContain(vcsim.password);
    } finally {
      await server.close();
    }
  });

  it('refuses a wrong password with an InvalidLogin fault that does not show it', async () => {
    const error = await VsphereClient.connect(options({ password: 'not-the-password<&>' })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VsphereFault);
    expect(error).toMatchObject({ faultType: 'InvalidLogin' });
    expect((error as Error).message).not.toContain('not-the-password');
  });

  it('lists the VMs with their instance UUIDs, disks, datacenter and state; finds one by instance UUID', async () => {
    const client = await connect();
    const vms = await client.listVms();
    expect(vms.map((v) => v.name).sort()).toEqual(['DC0_C0_RP0_VM0', 'DC0_C0_RP0_VM1', 'DC0_H0_VM0', 'DC0_H0_VM1']);
    expect(new Set(vms.map((v) => v.instanceUuid)).size).toBe(4);
    for (const vm of vms) {
      expect(vm).toMatchObject({ ref: { type: 'VirtualMachine' }, datacenter: vcsim.datacenter, powerState: 'poweredOn', toolsRunning: false, changeTrackingEnabled: false, snapshots: [] });
      expect(vm.instanceUuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(vm.disks).toEqual([
        { key: expect.any(Number), label: expect.any(String), capacityBytes: 1024 * 1024, fileName: `[LocalDS_0] ${vm.name}/disk1.vmdk`, datastore: 'LocalDS_0', changeId: null, thin: true },
      ]);
    }
    const one = vms.find((v) => v.name === 'DC0_C0_RP0_VM1')!;
    expect(await client.findVm(one.instanceUuid)).toEqual(one);
    expect(await client.findVm('00000000-0000-0000-0000-000000000000')).toBeNull();
  });

  it('adds disks on the first controller with a free unit, and turns change tracking on and off', async () => {
    const client = await connect();
    const vm = (await client.listVms()).find((v) => v.name === 'DC0_H0_VM1')!;
    await client.addDisk(vm.ref, { capacityBytes: 4 * 1024 * 1024, fileName: '[LocalDS_0] DC0_H0_VM1/extra.vmdk' });
    await client.addDisk(vm.ref, { capacityBytes: 2 * 1024 * 1024, fileName: '[LocalDS_0] DC0_H0_VM1/thick.vmdk', thin: false });
    const after = (await client.findVm(vm.instanceUuid))!;
    expect(after.disks.slice(1)).toEqual([
      expect.objectContaining({ capacityBytes: 4 * 1024 * 1024, fileName: '[LocalDS_0] DC0_H0_VM1/extra.vmdk', datastore: 'LocalDS_0', thin: true }),
      expect.objectContaining({ capacityBytes: 2 * 1024 * 1024, fileName: '[LocalDS_0] DC0_H0_VM1/thick.vmdk', thin: false }),
    ]);
    const devices = child(
      child(child(child(await client.invoke('RetrievePropertiesEx', { type: 'PropertyCollector', value: 'propertyCollector' }, `<specSet><propSet><type>VirtualMachine</type><pathSet>config.hardware.device</pathSet></propSet><objectSet><obj type="VirtualMachine">${vm.ref.value}</obj></objectSet></specSet><options/>`), 'returnval'), 'objects'), 'propSet'),
      'val',
    )!.children;
    const slots = devices.filter((d) => d.xsiType?.name === 'VirtualDisk').map((d) => `${textAt(d, 'controllerKey')}:${textAt(d, 'unitNumber')}`);
    expect(new Set(slots).size).toBe(slots.length);
    await expect(client.addDisk(vm.ref, { capacityBytes: 1000, fileName: '[LocalDS_0] DC0_H0_VM1/odd.vmdk' })).rejects.toThrow(/whole number of KiB/);
    await expect(client.addDisk(vm.ref, { capacityBytes: 1024 * 1024, fileName: '[LocalDS_0] DC0_H0_VM1/extra.vmdk' })).rejects.toMatchObject({ faultType: 'FileAlreadyExists' });

    await client.setChangeTracking(vm.ref, true);
    expect((await client.findVm(vm.instanceUuid))!.changeTrackingEnabled).toBe(true);
    await client.setChangeTracking(vm.ref, false);
    expect((await client.findVm(vm.instanceUuid))!.changeTrackingEnabled).toBe(false);
  });

  it('creates snapshots (the whole tree is listed), reads their disks, removes them; removing one twice is a fault with its type', async () => {
    const client = await connect();
    const vm = (await client.listVms()).find((v) => v.name === 'DC0_H0_VM0')!;
    const first = await client.createSnapshot(vm.ref, 'sendense-1', 'first <one> & "quoted"', { memory: false, quiesce: false });
    const second = await client.createSnapshot(vm.ref, 'sendense-2', '', { memory: false, quiesce: true });
    expect(first).toMatchObject({ type: 'VirtualMachineSnapshot' });
    const listed = (await client.findVm(vm.instanceUuid))!.snapshots;
    expect(listed).toEqual([
      { ref: first, name: 'sendense-1', description: 'first <one> & "quoted"', createTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) },
      { ref: second, name: 'sendense-2', description: '', createTime: expect.any(String) },
    ]);
    const disks = await client.snapshotDisks(first);
    expect(disks.map((d) => [d.key, d.fileName])).toEqual(vm.disks.map((d) => [d.key, d.fileName]));

    await client.removeSnapshot(second);
    await client.removeSnapshot(first, { consolidate: true });
    expect((await client.findVm(vm.instanceUuid))!.snapshots).toEqual([]);
    const again = await client.removeSnapshot(first).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(VsphereFault);
    expect(again).toMatchObject({ faultType: 'ManagedObjectNotFound' });
    expect((again as Error).message).toContain('RemoveSnapshot_Task');
    await expect(client.snapshotDisks(first)).rejects.toMatchObject({ faultType: 'ManagedObjectNotFound' });
  });

  it('writes and reads datastore files: exact ranges (206) anywhere in the file, sizes, a missing file named by its path', async () => {
    const client = await connect();
    const data = randomBytes(3 * 1024 * 1024 + 123);
    const url = client.datastoreUrl(vcsim.datacenter, 'LocalDS_0', 'DC0_H0_VM0/some dir/data #1.bin');
    expect(url.pathname).toBe('/folder/DC0_H0_VM0/some%20dir/data%20%231.bin');
    expect(url.searchParams.get('dcPath')).toBe(vcsim.datacenter);
    await client.putFile(url, data);
    expect(await client.fileSize(url)).toBe(data.length);
    expect((await client.readRange(url, 1_000_001, 65_536)).equals(data.subarray(1_000_001, 1_000_001 + 65_536))).toBe(true);
    expect((await client.readRange(url, data.length - 7, 7)).equals(data.subarray(-7))).toBe(true);
    const into = Buffer.alloc(2 * 1024 * 1024, 0xee);
    const read = await client.readRange(url, 12345, 1024 * 1024 + 3, into);
    expect(read.buffer).toBe(into.buffer);
    expect(read.equals(data.subarray(12345, 12345 + 1024 * 1024 + 3))).toBe(true);
    expect(into[1024 * 1024 + 3]).toBe(0xee);
    expect((await client.readRange(url, 0, data.length)).equals(data)).toBe(true);
    expect((await client.getFile(url)).equals(data)).toBe(true);
    await expect(client.readRange(url, data.length - 10, 20)).rejects.toThrow(/another range|416/);
    const missing = await client.getFile(client.datastoreUrl(vcsim.datacenter, 'LocalDS_0', 'DC0_H0_VM0/missing.bin')).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(VsphereHttpError);
    expect((missing as Error).message).toMatch(/^vSphere answered 404 to GET \/folder\/DC0_H0_VM0\/missing\.bin\?dcPath=DC0&dsName=LocalDS_0/);
    expect((missing as Error).message).not.toContain(vcsim.password);
    expect(await client.fileSize(client.datastoreUrl(vcsim.datacenter, 'LocalDS_0', 'DC0_H0_VM0/disk1-flat.vmdk'))).toBe(0);
  });

  it('logs in again once when the session expired, for SOAP calls and for file reads', async () => {
    const client = await connect();
    const admin = await connect();
    const url = client.datastoreUrl(vcsim.datacenter, 'LocalDS_0', 'DC0_H0_VM1/relogin.bin');
    await client.putFile(url, Buffer.from('0123456789'));
    const terminate = async () => admin.invoke('TerminateSession', { type: 'SessionManager', value: 'SessionManager' }, `<sessionId>${await currentSessionKey(client)}</sessionId>`);
    let cookie = client.sessionCookie;
    await terminate();
    expect(await client.listVms()).toHaveLength(4);
    expect(client.sessionCookie).not.toBe(cookie);
    cookie = client.sessionCookie;
    await terminate();
    expect((await client.readRange(url, 2, 3)).toString()).toBe('234');
    expect(client.sessionCookie).not.toBe(cookie);
    cookie = client.sessionCookie;
    await terminate();
    const sessions = (await sessionKeys(admin)).length;
    const vm = (await admin.listVms())[0];
    // calls at once share one new login
    const found = await Promise.all([client.findVm(vm.instanceUuid), client.findVm(vm.instanceUuid), client.listVms(), client.fileSize(url)]);
    expect(found[0]!.instanceUuid).toBe(vm.instanceUuid);
    expect(found[3]).toBe(10);
    expect(client.sessionCookie).not.toBe(cookie);
    expect((await sessionKeys(admin)).length).toBe(sessions + 1);
  });

  it('makes each SOAP fault a VsphereFault with its type: a method the object does not have, a request the server cannot read', async () => {
    const client = await connect();
    const wrongObject = await client.invoke('CreateSnapshot_Task', { type: 'Folder', value: 'group-d1' }, '<name>x</name><memory>false</memory><quiesce>false</quiesce>').catch((e: unknown) => e);
    expect(wrongObject).toBeInstanceOf(VsphereFault);
    expect(wrongObject).toMatchObject({ faultType: 'MethodNotFound', operation: 'CreateSnapshot_Task' });
    const unknown = await client.invoke('NoSuchMethodAnywhere', { type: 'ServiceInstance', value: 'ServiceInstance' }, '').catch((e: unknown) => e);
    expect(unknown).toMatchObject({ faultType: 'InvalidRequest', operation: 'NoSuchMethodAnywhere' });
  });

  it('queries changed disk areas (the launcher SIMULATES QueryChangedDiskAreas on vcsim)', async () => {
    const client = await connect();
    const vm = (await client.listVms()).find((v) => v.name === 'DC0_C0_RP0_VM0')!;
    const disk = vm.disks[0];
    const block = vcsim.cbt.blockSize;
    const flat = client.datastoreUrl(vcsim.datacenter, 'LocalDS_0', `${vm.name}/disk1-flat.vmdk`);
    const content = Buffer.alloc(disk.capacityBytes);
    content.fill(1, 2 * block, 3 * block);
    content.fill(2, 5 * block, 7 * block);
    await client.putFile(flat, content);
    await client.setChangeTracking(vm.ref, true);
    const first = await client.createSnapshot(vm.ref, 'cbt-1', '', { memory: false, quiesce: false });
    const [firstDisk] = await client.snapshotDisks(first);
    expect(firstDisk.changeId).toBeTruthy();
    const all = await client.queryChangedDiskAreas(vm.ref, first, disk.key, 0, '*');
    expect(all).toEqual({
      startOffset: 0,
      length: disk.capacityBytes,
      changedArea: [
        { start: 2 * block, length: block },
        { start: 5 * block, length: 2 * block },
      ],
    });
    content.fill(3, 9 * block, 10 * block);
    await client.putFile(flat, content);
    const second = await client.createSnapshot(vm.ref, 'cbt-2', '', { memory: false, quiesce: false });
    const changed = await client.queryChangedDiskAreas(vm.ref, second, disk.key, 0, firstDisk.changeId!);
    expect(changed.changedArea).toEqual([{ start: 9 * block, length: block }]);
    const bad = await client.queryChangedDiskAreas(vm.ref, second, disk.key, 0, 'not-a-change-id').catch((e: unknown) => e);
    expect(bad).toMatchObject({ faultType: 'InvalidArgument' });
    await client.removeSnapshot(second);
    await client.removeSnapshot(first);
    await client.setChangeTracking(vm.ref, false);
  });

  it('watches the VMs: onChange after a snapshot is made, again after its session was lost, and returns once aborted', async () => {
    const client = await connect();
    const admin = await connect();
    const vm = (await client.listVms()).find((v) => v.name === 'DC0_C0_RP0_VM1')!;
    let changes = 0;
    let wake: (() => void) | null = null;
    const changed = (within = 10_000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no onChange within ${within} ms`)), within);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    const controller = new AbortController();
    let next = changed();
    const watching = client.watchVms(() => {
      changes++;
      wake?.();
    }, controller.signal);
    await next; // the initial state
    const initial = changes;
    next = changed();
    const snapshot: MoRef = await client.createSnapshot(vm.ref, 'watched', '', { memory: false, quiesce: false });
    await next;
    expect(changes).toBeGreaterThan(initial);

    // the watch's session ends: its collector is gone with it; the watch logs in again and starts over
    await admin.invoke('TerminateSession', { type: 'SessionManager', value: 'SessionManager' }, `<sessionId>${await currentSessionKey(client)}</sessionId>`);
    next = changed();
    await admin.removeSnapshot(snapshot);
    await next;
    next = changed();
    await next; // the new watch's initial state, after a backoff
    next = changed();
    await admin.createSnapshot(vm.ref, 'watched-again', '', { memory: false, quiesce: false });
    await next;

    const started = Date.now();
    controller.abort();
    await watching;
    expect(Date.now() - started).toBeLessThan(5_000);
    for (const s of (await admin.findVm(vm.instanceUuid))!.snapshots) await admin.removeSnapshot(s.ref);
  });

  it('ends its session on logout', async () => {
    const client = await VsphereClient.connect(options());
    const admin = await connect();
    const key = await currentSessionKey(client);
    expect(await sessionKeys(admin)).toContain(key);
    await client.logout();
    expect(client.sessionCookie).toBe('');
    expect(await sessionKeys(admin)).not.toContain(key);
  });
});

/**
 * What vcsim does not do: page property results, run a newer API version, write `xsi:type` as vCenter does, nest
 * datacenters in folders and VMs in vApps, fail with an HTTP error, ignore a Range header, cut an answer short.
 */
describe('VsphereClient against a scripted vCenter', () => {
  const PASSWORD = 'pa<ss>&"word\'';
  let identity: Identity;
  let server: HttpsServer;
  let base: string;
  const seen: { method: string; action: string | undefined; cookie: string | undefined; body: string }[] = [];
  const file = Buffer.from(Array.from({ length: 100 }, (_, i) => i));

  const envelope = (inner: string) =>
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
    `<soapenv:Body>${inner}</soapenv:Body></soapenv:Envelope>`;
  const object = (type: string, value: string, props: Record<string, string>) =>
    `<objects><obj type="${type}">${value}</obj>${Object.entries(props)
      .map(([name, val]) => `<propSet><name>${name}</name>${val}</propSet>`)
      .join('')}</objects>`;
  const ref = (type: string, value: string) => `<val xsi:type="ManagedObjectReference" type="${type}">${value}</val>`;
  const str = (value: string) => `<val xsi:type="xsd:string">${value}</val>`;
  const disk = (key: number, file: string, extra: string) =>
    `<VirtualDevice xsi:type="VirtualDisk"><key>${key}</key><deviceInfo><label>Hard disk ${key - 1999}</label><summary>x</summary></deviceInfo>` +
    `<backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>${file}</fileName>${extra}</backing><controllerKey>1000</controllerKey><unitNumber>${key - 2000}</unitNumber>` +
    `<capacityInKB>1073741824</capacityInKB><capacityInBytes>1099511627776</capacityInBytes></VirtualDevice>`;
  const tree = (id: number, name: string, children = '') =>
    `<snapshot type="VirtualMachineSnapshot">snapshot-${id}</snapshot><vm type="VirtualMachine">vm-1</vm><name>${name}</name><description>d${id}</description><id>${id}</id><createTime>2026-01-0${id}T00:00:00Z</createTime><state>poweredOff</state><quiesced>false</quiesced>${children}`;
  const vmProps = (name: string, uuid: string, parent: Record<string, string>, template = false) => ({
    name: str(name),
    'config.instanceUuid': str(uuid),
    'config.template': `<val xsi:type="xsd:boolean">${template}</val>`,
    'runtime.powerState': '<val xsi:type="VirtualMachinePowerState">poweredOff</val>',
    'guest.toolsRunningStatus': str('guestToolsRunning'),
    'config.changeTrackingEnabled': '<val xsi:type="xsd:boolean">true</val>',
    'config.hardware.device':
      '<val xsi:type="ArrayOfVirtualDevice"><VirtualDevice xsi:type="ParaVirtualSCSIController"><key>1000</key><deviceInfo><label>SCSI controller 0</label><summary>x</summary></deviceInfo><busNumber>0</busNumber><scsiCtlrUnitNumber>7</scsiCtlrUnitNumber></VirtualDevice>' +
      disk(2000, `[ds 1] ${name}/${name}.vmdk`, '<diskMode>persistent</diskMode><thinProvisioned>false</thinProvisioned><changeId>52 aa bb/7</changeId>') +
      disk(2001, `[ds 1] ${name}/${name}_1.vmdk`, '<diskMode>persistent</diskMode>') +
      '</val>',
    snapshot: `<val xsi:type="VirtualMachineSnapshotInfo"><currentSnapshot type="VirtualMachineSnapshot">snapshot-3</currentSnapshot><rootSnapshotList>${tree(1, 'a', `<childSnapshotList>${tree(2, 'b', `<childSnapshotList>${tree(3, 'c')}</childSnapshotList>`)}</childSnapshotList>`)}</rootSnapshotList><rootSnapshotList>${tree(4, 'd')}</rootSnapshotList></val>`,
    ...parent,
  });

  function soap(method: string): string | { status: number; body: string; headers?: Record<string, string> } {
    switch (method) {
      case 'RetrieveServiceContent':
        return (
          '<RetrieveServiceContentResponse xmlns="urn:vim25"><returnval><rootFolder type="Folder">group-d1</rootFolder><propertyCollector type="PropertyCollector">propertyCollector</propertyCollector>' +
          '<viewManager type="ViewManager">ViewManager</viewManager><about><name>VMware vCenter Server</name><apiType>VirtualCenter</apiType><apiVersion>8.0.2.0</apiVersion></about>' +
          '<sessionManager type="SessionManager">SessionManager</sessionManager><searchIndex type="SearchIndex">SearchIndex</searchIndex></returnval></RetrieveServiceContentResponse>'
        );
      case 'Login':
        return { status: 200, body: envelope('<LoginResponse xmlns="urn:vim25"><returnval><key>52k</key><userName>u</userName></returnval></LoginResponse>'), headers: { 'Set-Cookie': 'vmware_soap_session="52c9a8e7"; Path=/; HttpOnly; Secure;' } };
      case 'CreateContainerView':
        return '<CreateContainerViewResponse xmlns="urn:vim25"><returnval type="ContainerView">session[52c9]52view</returnval></CreateContainerViewResponse>';
      case 'DestroyView':
        return '<DestroyViewResponse xmlns="urn:vim25"></DestroyViewResponse>';
      case 'RetrievePropertiesEx':
        return (
          '<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><token>page-2</token>' +
          object('VirtualMachine', 'vm-1', vmProps('web%2f01', '50000000-0000-0000-0000-000000000001', { parent: ref('Folder', 'group-v9') })) +
          object('Folder', 'group-v9', { name: str('vm'), parent: ref('Datacenter', 'datacenter-2') }) +
          '</returnval></RetrievePropertiesExResponse>'
        );
      case 'ContinueRetrievePropertiesEx':
        return (
          '<ContinueRetrievePropertiesExResponse xmlns="urn:vim25"><returnval>' +
          object('Datacenter', 'datacenter-2', { name: str('Lab DC'), parent: ref('Folder', 'group-d5') }) +
          object('Folder', 'group-d5', { name: str('Europe'), parent: ref('Folder', 'group-d1') }) +
          object('Folder', 'group-d1', { name: str('Datacenters') }) +
          object('VirtualMachine', 'vm-2', vmProps('golden', '50000000-0000-0000-0000-000000000002', { parent: ref('Folder', 'group-v9') }, true)) +
          object('VirtualMachine', 'vm-3', vmProps('in-vapp', '50000000-0000-0000-0000-000000000003', { parentVApp: ref('VirtualApp', 'resgroup-v1') })) +
          object('VirtualApp', 'resgroup-v1', { name: str('app'), parent: ref('ResourcePool', 'resgroup-1') }) +
          object('ResourcePool', 'resgroup-1', { name: str('Resources'), parent: ref('ClusterComputeResource', 'domain-c1') }) +
          object('ClusterComputeResource', 'domain-c1', { name: str('cluster'), parent: ref('Folder', 'group-h4') }) +
          object('Folder', 'group-h4', { name: str('host'), parent: ref('Datacenter', 'datacenter-2') }) +
          '</returnval></ContinueRetrievePropertiesExResponse>'
        );
      case 'FindByUuid':
        return { status: 503, body: '<html><body><h1>503 Service Unavailable</h1></body></html>' };
      default:
        return {
          status: 500,
          body: envelope(`<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Unable to resolve WSDL method name ${method}</faultstring><detail><InvalidRequestFault xmlns="urn:vim25" xsi:type="InvalidRequest"></InvalidRequestFault></detail></soapenv:Fault>`),
        };
    }
  }

  beforeAll(async () => {
    identity = selfSigned();
    server = createHttpsServer({ key: identity.key, cert: identity.cert }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => {
        const url = new URL(req.url!, 'https://x');
        if (url.pathname === '/sdk') {
          const body = Buffer.concat(chunks).toString('utf8');
          const method = child(parseXml(body), 'Body')!.children[0].name;
          seen.push({ method, action: req.headers.soapaction as string | undefined, cookie: req.headers.cookie, body });
          const answer = soap(method);
          const { status, body: text, headers } = typeof answer === 'string' ? { status: 200, body: envelope(answer), headers: {} } : answer;
          res.writeHead(status, { 'Content-Type': 'text/xml; charset=utf-8', ...headers });
          res.end(text);
        } else if (url.pathname === '/folder/ignores-range.bin') {
          res.writeHead(200, { 'Content-Length': file.length });
          res.end(req.method === 'HEAD' ? undefined : file);
        } else if (url.pathname === '/folder/wrong-range.bin') {
          res.writeHead(206, { 'Content-Range': 'bytes 0-9/100', 'Content-Length': 10 });
          res.end(file.subarray(0, 10));
        } else if (url.pathname === '/folder/short.bin') {
          res.writeHead(206, { 'Content-Range': 'bytes 10-19/100', 'Content-Length': 10 });
          res.write(file.subarray(10, 15));
          setTimeout(() => res.socket?.destroy(), 50);
        } else if (url.pathname === '/folder/hangs.bin') {
          // never answers
        } else {
          res.writeHead(404);
          res.end('not here');
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const scripted = (timeoutMs?: number) => VsphereClient.connect({ sdkUrl: `https://someone:secret@127.0.0.1:${new URL(base).port}`, user: 'admin', password: PASSWORD, thumbprint: identity.sha1, timeoutMs });

  it('speaks vim25 with the server\'s API version, sends the password escaped and the session cookie as set', async () => {
    seen.length = 0;
    const client = await scripted();
    expect(client.apiVersion).toBe('8.0.2.0');
    expect(client.sessionCookie).toBe('vmware_soap_session="52c9a8e7"');
    expect(seen.map((s) => [s.method, s.action, s.cookie])).toEqual([
      ['RetrieveServiceContent', 'urn:vim25/6.5', undefined],
      ['Login', 'urn:vim25/8.0.2.0', undefined],
    ]);
    const login = child(parseXml(seen[1].body), 'Body')!.children[0];
    expect(login).toMatchObject({ name: 'Login', ns: 'urn:vim25' });
    expect(child(login, '_this')).toMatchObject({ attrs: { type: 'SessionManager' }, text: 'SessionManager' });
    expect(textAt(login, 'password')).toBe(PASSWORD);
    await client.logout().catch(() => undefined);
  });

  it('reads every page of a retrieval, finds datacenters in folders and VMs in vApps, leaves templates out', async () => {
    seen.length = 0;
    const client = await scripted();
    const vms = await client.listVms();
    expect(seen.map((s) => s.method)).toEqual(['RetrieveServiceContent', 'Login', 'CreateContainerView', 'RetrievePropertiesEx', 'ContinueRetrievePropertiesEx', 'DestroyView']);
    expect(seen.slice(2).every((s) => s.cookie === 'vmware_soap_session="52c9a8e7"' && s.action === 'urn:vim25/8.0.2.0')).toBe(true);
    expect(textAt(child(parseXml(seen[4].body), 'Body')!.children[0], 'token')).toBe('page-2');
    expect(vms.map((v) => [v.name, v.datacenter])).toEqual([
      ['web%2f01', 'Europe/Lab DC'],
      ['in-vapp', 'Europe/Lab DC'],
    ]);
    expect(vms[0]).toEqual({
      ref: { type: 'VirtualMachine', value: 'vm-1' },
      instanceUuid: '50000000-0000-0000-0000-000000000001',
      name: 'web%2f01',
      powerState: 'poweredOff',
      toolsRunning: true,
      changeTrackingEnabled: true,
      datacenter: 'Europe/Lab DC',
      disks: [
        { key: 2000, label: 'Hard disk 1', capacityBytes: 2 ** 40, fileName: '[ds 1] web%2f01/web%2f01.vmdk', datastore: 'ds 1', changeId: '52 aa bb/7', thin: false },
        { key: 2001, label: 'Hard disk 2', capacityBytes: 2 ** 40, fileName: '[ds 1] web%2f01/web%2f01_1.vmdk', datastore: 'ds 1', changeId: null, thin: null },
      ],
      snapshots: ['a', 'b', 'c', 'd'].map((name, i) => ({ ref: { type: 'VirtualMachineSnapshot', value: `snapshot-${i + 1}` }, name, description: `d${i + 1}`, createTime: `2026-01-0${i + 1}T00:00:00Z` })),
    });
    await client.logout().catch(() => undefined);
  });

  it('names the HTTP status, the path and the method of a failed SOAP call, and a fault\'s type from the detail', async () => {
    const client = await scripted();
    const unavailable = await client.findVm('50000000-0000-0000-0000-000000000001').catch((e: unknown) => e);
    expect(unavailable).toBeInstanceOf(VsphereHttpError);
    expect((unavailable as Error).message).toBe('vSphere answered 503 to POST /sdk (FindByUuid): 503 Service Unavailable');
    const fault = await client.invoke('Nonsense', null, '').catch((e: unknown) => e);
    expect(fault).toMatchObject({ faultType: 'InvalidRequest', faultString: 'Unable to resolve WSDL method name Nonsense' });
    for (const error of [unavailable, fault]) {
      expect((error as Error).message).not.toContain('secret');
      expect((error as Error).message).not.toContain(PASSWORD);
    }
    await client.logout().catch(() => undefined);
  });

  it('takes a range only as asked: not the whole file for a later range, not another range, not a short one; and gives up in time', async () => {
    const client = await scripted(400);
    const url = (name: string) => new URL(`/folder/${name}?dcPath=dc&dsName=ds`, base);
    expect((await client.readRange(url('ignores-range.bin'), 0, 100)).equals(file)).toBe(true);
    await expect(client.readRange(url('ignores-range.bin'), 10, 20)).rejects.toThrow(/with the whole file \(100 bytes\) instead of the range/);
    await expect(client.readRange(url('ignores-range.bin'), 0, 50)).rejects.toThrow(/with the whole file/);
    await expect(client.readRange(url('wrong-range.bin'), 10, 10)).rejects.toThrow(/with another range \(bytes 0-9\/100\)/);
    await expect(client.readRange(url('short.bin'), 10, 10)).rejects.toThrow(/5 of 10 bytes|5 bytes instead of 10/);
    await expect(client.readRange(url('hangs.bin'), 0, 10)).rejects.toThrow(/did not complete GET \/folder\/hangs\.bin\?dcPath=dc&dsName=ds within 400 ms/);
    expect(await client.fileSize(url('ignores-range.bin'))).toBe(100);
    await expect(client.getFile(url('missing.bin'))).rejects.toThrow('vSphere answered 404 to GET /folder/missing.bin?dcPath=dc&dsName=ds: not here');
    await expect(client.readRange(new URL('https://elsewhere.example/folder/x'), 0, 1)).rejects.toThrow(/not the vSphere server this client is connected to/);
    await client.logout().catch(() => undefined);
  });
});
