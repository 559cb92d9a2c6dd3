import { existsSync, statSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { datastoreFileUrl, flatVmdkDescriptor, startVcsim, Vcsim } from './vcsim-lab';

/**
 * The vcsim launcher the VMware source is tested against: a vCenter over HTTPS, datastore file access, and its
 * SIMULATED changed block tracking (QueryChangedDiskAreas paged, against the changeIds snapshots got).
 * The SOAP here is deliberately minimal (strings and regular expressions); the product's client is elsewhere.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 64 * KiB;
const PAGE = 4 * MiB;
const CAPACITY = 10 * MiB; // 160 blocks: pages of 64, 64 and 32 blocks

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** HTTPS to the launcher: its self-signed certificate is accepted only with the printed SHA-256 thumbprint. */
function https(vcsim: Vcsim, method: string, url: string, headers: Record<string, string> = {}, body?: string | Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const sized = body === undefined ? headers : { ...headers, 'Content-Length': String(Buffer.byteLength(body)) };
    const req = request(url, { method, headers: sized, rejectUnauthorized: false }, (res) => {
      const print = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
      if (print !== vcsim.sha256) {
        res.destroy();
        reject(new Error(`certificate ${print} is not the launcher's ${vcsim.sha256}`));
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const unesc = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#34;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');
/** The contents of each `<tag ...>...</tag>` (tags that do not nest in what is read here). */
const all = (xml: string, tag: string) => [...xml.matchAll(new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => m[1]);
const one = (xml: string, tag: string) => all(xml, tag)[0];

interface Ref {
  type: string;
  value: string;
}
const ref = (tag: string, r: Ref) => `<${tag} type="${r.type}">${esc(r.value)}</${tag}>`;
const refIn = (xml: string, tag: string): Ref => {
  const m = new RegExp(`<${tag} type="([^"]+)">([^<]*)</${tag}>`).exec(xml);
  if (!m) throw new Error(`no <${tag}> reference in ${xml.slice(0, 500)}`);
  return { type: m[1], value: unesc(m[2]) };
};

class SoapFault extends Error {
  constructor(
    readonly faultstring: string,
    readonly fault: string,
  ) {
    super(`SOAP fault ${fault}: ${faultstring}`);
  }
}

class Soap {
  private cookie = '';
  constructor(private readonly vcsim: Vcsim) {}

  get session(): string {
    return this.cookie;
  }

  /** The <returnval>s of `method` on `self`, or a SoapFault. */
  async call(method: string, self: Ref, params = ''): Promise<string> {
    const envelope =
      '<?xml version="1.0" encoding="UTF-8"?>' +
      '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' +
      `<soapenv:Body><${method} xmlns="urn:vim25">${ref('_this', self)}${params}</${method}></soapenv:Body></soapenv:Envelope>`;
    const headers: Record<string, string> = { 'Content-Type': 'text/xml; charset=utf-8', SOAPAction: '"urn:vim25/6.5"' };
    if (this.cookie) headers.Cookie = this.cookie;
    const res = await https(this.vcsim, 'POST', this.vcsim.url, headers, envelope);
    const cookie = (res.headers['set-cookie'] ?? []).find((c) => c.startsWith('vmware_soap_session='));
    if (cookie) this.cookie = cookie.split(';')[0];
    const xml = res.body.toString('utf8');
    if (res.status !== 200) {
      const detail = /<detail>\s*<(\w+)Fault[\s>]/.exec(xml);
      throw new SoapFault(unesc(one(xml, 'faultstring') ?? xml), detail?.[1] ?? `HTTP ${res.status}`);
    }
    return xml.slice(xml.indexOf('<returnval'), xml.lastIndexOf('</returnval>') + '</returnval>'.length);
  }

  /** name → the inner XML of its <val>, for each object the property collector returns. */
  async properties(collector: Ref, objectSet: string, type: string, paths: string[]): Promise<Map<string, Map<string, string>>> {
    const xml = await this.call(
      'RetrievePropertiesEx',
      collector,
      `<specSet><propSet><type>${type}</type>${paths.map((p) => `<pathSet>${p}</pathSet>`).join('')}</propSet>${objectSet}</specSet><options/>`,
    );
    const found = new Map<string, Map<string, string>>();
    for (const object of all(xml, 'objects')) {
      const props = new Map<string, string>();
      for (const prop of all(object, 'propSet')) props.set(one(prop, 'name'), /<val(?:\s[^>]*)?>([\s\S]*)<\/val>/.exec(prop)?.[1] ?? '');
      found.set(refIn(object, 'obj').value, props);
    }
    return found;
  }

  async propertiesOf(collector: Ref, obj: Ref, paths: string[]): Promise<Map<string, string>> {
    return (await this.properties(collector, `<objectSet>${ref('obj', obj)}</objectSet>`, obj.type, paths)).get(obj.value) ?? new Map();
  }

  /** The task's result once it succeeded (vcsim's tasks have ended by the time their call answers). */
  async waitTask(collector: Ref, task: Ref): Promise<string> {
    for (let i = 0; i < 100; i++) {
      const info = await this.propertiesOf(collector, task, ['info.state', 'info.result', 'info.error']);
      const state = info.get('info.state');
      if (state === 'success') return info.get('info.result') ?? '';
      if (state === 'error') throw new Error(`task ${task.value} failed: ${info.get('info.error')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`task ${task.value} did not end`);
  }
}

interface Device {
  type: string;
  key: number;
  xml: string;
}

/** The devices of a config.hardware.device value: <VirtualDevice XMLSchema-instance:type="VirtualDisk">... */
function devices(val: string): Device[] {
  return [...val.matchAll(/<VirtualDevice\s([^>]*)>([\s\S]*?)<\/VirtualDevice>/g)].map((m) => ({
    type: /\b[\w.-]+:type="([^"]+)"/.exec(m[1])![1],
    key: Number(one(m[2], 'key')),
    xml: m[2],
  }));
}
const changeIdOf = (disk: Device | undefined) => (disk && one(disk.xml, 'changeId') ? unesc(one(disk.xml, 'changeId')) : undefined);
const CHANGE_ID = /^52( [0-9a-f]{2}){7}-[0-9a-f]{2}( [0-9a-f]{2}){7}\/\d+$/;

interface Page {
  startOffset: number;
  length: number;
  areas: Array<{ start: number; length: number }>;
}

function diskChangeInfo(xml: string): Page {
  const areas = all(xml, 'changedArea').map((a) => ({ start: Number(one(a, 'start')), length: Number(one(a, 'length')) }));
  const rest = xml.replace(/<changedArea>[\s\S]*?<\/changedArea>/g, '');
  return { startOffset: Number(one(rest, 'startOffset')), length: Number(one(rest, 'length')), areas };
}

/** A block filled with one byte value. */
const block = (value: number) => Buffer.alloc(BLOCK, value);
const areaOf = (first: number, count = 1) => ({ start: first * BLOCK, length: count * BLOCK });

describe('vcsim launcher (govmomi simulator with simulated CBT)', () => {
  let vcsim: Vcsim;
  let soap: Soap;
  let collector: Ref;
  let vm: Ref;
  let diskKey: number;
  let otherDisk: Device;
  let descriptorPath: string;
  let flatPath: string;
  let firstSnapshot: Ref;
  let secondSnapshot: Ref;
  let firstChangeId: string;
  let secondChangeId: string;

  beforeAll(async () => {
    vcsim = await startVcsim({ cbtPageBytes: PAGE });
    soap = new Soap(vcsim);
  }, 180_000);

  afterAll(async () => {
    await vcsim?.stop();
  });

  const vmDevices = async (target: Ref) => devices((await soap.propertiesOf(collector, target, ['config.hardware.device'])).get('config.hardware.device') ?? '');
  const ourDisk = async (target: Ref) => (await vmDevices(target)).find((d) => d.type === 'VirtualDisk' && d.key === diskKey);
  const snapshot = async (name: string): Promise<Ref> => {
    const task = refIn(await soap.call('CreateSnapshot_Task', vm, `<name>${name}</name><memory>false</memory><quiesce>true</quiesce>`), 'returnval');
    return { type: 'VirtualMachineSnapshot', value: unesc(await soap.waitTask(collector, task)) };
  };
  const query = (snap: Ref, key: number, startOffset: number, changeId: string) =>
    soap.call('QueryChangedDiskAreas', vm, `${ref('snapshot', snap)}<deviceKey>${key}</deviceKey><startOffset>${startOffset}</startOffset><changeId>${esc(changeId)}</changeId>`);
  /** Every page from offset 0 to the capacity, as a client walks them. */
  const allPages = async (snap: Ref, changeId: string): Promise<Page[]> => {
    const pages: Page[] = [];
    for (let offset = 0; offset < CAPACITY; ) {
      const page = diskChangeInfo(await query(snap, diskKey, offset, changeId));
      expect(page.startOffset).toBe(offset);
      expect(page.length).toBeGreaterThan(0);
      pages.push(page);
      offset += page.length;
    }
    return pages;
  };
  const put = (path: string, body: string | Buffer, cookie = soap.session) => https(vcsim, 'PUT', datastoreFileUrl(vcsim, 'LocalDS_0', path), cookie ? { Cookie: cookie } : {}, body);

  it('prints its URL, credentials, certificate thumbprints and datastores, and answers over HTTPS', async () => {
    expect(vcsim.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/sdk$/);
    expect(vcsim.sha1).toMatch(/^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);
    expect(vcsim.sha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(vcsim.datastores.map((d) => d.name)).toEqual(['LocalDS_0']);
    expect(statSync(vcsim.datastores[0].path).isDirectory()).toBe(true);
    expect(vcsim.cbt).toMatchObject({ simulated: true, blockSize: BLOCK, pageBytes: PAGE });

    const content = await soap.call('RetrieveServiceContent', { type: 'ServiceInstance', value: 'ServiceInstance' });
    collector = refIn(content, 'propertyCollector');
    await expect(soap.call('Login', refIn(content, 'sessionManager'), `<userName>${esc(vcsim.user)}</userName><password>wrong</password>`)).rejects.toMatchObject({ fault: 'InvalidLogin' });
    await soap.call('Login', refIn(content, 'sessionManager'), `<userName>${esc(vcsim.user)}</userName><password>${esc(vcsim.password)}</password>`);
    expect(soap.session).toMatch(/^vmware_soap_session=/);

    const view = refIn(
      await soap.call('CreateContainerView', refIn(content, 'viewManager'), `${ref('container', refIn(content, 'rootFolder'))}<type>VirtualMachine</type><recursive>true</recursive>`),
      'returnval',
    );
    const vms = await soap.properties(
      collector,
      `<objectSet>${ref('obj', view)}<skip>true</skip><selectSet xsi:type="TraversalSpec"><name>view</name><type>ContainerView</type><path>view</path><skip>false</skip></selectSet></objectSet>`,
      'VirtualMachine',
      ['name', 'config.files.vmPathName'],
    );
    const names = [...vms.values()].map((p) => p.get('name')).sort();
    expect(names).toEqual(['DC0_C0_RP0_VM0', 'DC0_C0_RP0_VM1', 'DC0_H0_VM0', 'DC0_H0_VM1']);
    const [id, props] = [...vms].find(([, p]) => p.get('name') === 'DC0_H0_VM0')!;
    vm = { type: 'VirtualMachine', value: id };
    // "[LocalDS_0] DC0_H0_VM0/DC0_H0_VM0.vmx": the VM's directory in the datastore
    const vmDir = /^\[LocalDS_0\] (.+)\/[^/]+\.vmx$/.exec(props.get('config.files.vmPathName')!)![1];
    descriptorPath = `${vmDir}/sendense-data.vmdk`;
    flatPath = `${vmDir}/sendense-data-flat.vmdk`;
  });

  it('adds a disk with change tracking on (vcsim creates its two files, empty) and takes uploads of its descriptor and flat file', async () => {
    // vcsim types polymorphic values with its own prefix for the XML Schema instance namespace, not "xsi"
    const raw = (await soap.propertiesOf(collector, vm, ['config.hardware.device'])).get('config.hardware.device')!;
    expect(raw).toMatch(/<VirtualDevice XMLSchema-instance:type="VirtualDisk">/);
    const before = devices(raw);
    const scsi = before.find((d) => d.type === 'ParaVirtualSCSIController')!;
    otherDisk = before.find((d) => d.type === 'VirtualDisk')!;
    const task = refIn(
      await soap.call(
        'ReconfigVM_Task',
        vm,
        '<spec><deviceChange><operation>add</operation><fileOperation>create</fileOperation>' +
          `<device xsi:type="VirtualDisk"><key>-1</key><controllerKey>${scsi.key}</controllerKey><unitNumber>1</unitNumber><capacityInKB>${CAPACITY / KiB}</capacityInKB>` +
          `<backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName>[LocalDS_0] ${esc(descriptorPath)}</fileName><diskMode>persistent</diskMode><thinProvisioned>true</thinProvisioned></backing>` +
          '</device></deviceChange><changeTrackingEnabled>true</changeTrackingEnabled></spec>',
      ),
      'returnval',
    );
    await soap.waitTask(collector, task);
    expect((await soap.propertiesOf(collector, vm, ['config.changeTrackingEnabled'])).get('config.changeTrackingEnabled')).toBe('true');
    const disk = (await vmDevices(vm)).find((d) => d.type === 'VirtualDisk' && one(d.xml, 'fileName') === `[LocalDS_0] ${descriptorPath}`)!;
    diskKey = disk.key;
    expect(one(disk.xml, 'capacityInKB')).toBe(String(CAPACITY / KiB));
    expect(changeIdOf(disk)).toBeUndefined(); // no changeId before a snapshot
    const local = vcsim.datastores[0].path;
    expect(statSync(join(local, descriptorPath)).size).toBe(0);
    expect(statSync(join(local, flatPath)).size).toBe(0);

    expect((await put(descriptorPath, flatVmdkDescriptor('sendense-data-flat.vmdk', CAPACITY), '')).status).toBe(401); // no session, no file access
    expect((await put(descriptorPath, flatVmdkDescriptor('sendense-data-flat.vmdk', CAPACITY))).status).toBe(200);
    const flat = Buffer.alloc(CAPACITY);
    for (const [at, value] of [[0, 1], [1, 2], [5, 3], [70, 4], [100, 5], [159, 6]]) block(value).copy(flat, at * BLOCK);
    expect((await put(flatPath, flat)).status).toBe(200);
    expect(statSync(join(local, flatPath)).size).toBe(CAPACITY);

    const range = await https(vcsim, 'GET', datastoreFileUrl(vcsim, 'LocalDS_0', flatPath), { Cookie: soap.session, Range: `bytes=${BLOCK}-${BLOCK + 9}` });
    expect(range.status).toBe(206);
    expect(range.headers['content-range']).toBe(`bytes ${BLOCK}-${BLOCK + 9}/${CAPACITY}`);
    expect(range.body).toEqual(Buffer.alloc(10, 2));
  });

  it('gives the disks of a snapshot of a VM with change tracking a new changeId, on the snapshot and on the VM', async () => {
    firstSnapshot = await snapshot('first');
    firstChangeId = changeIdOf(await ourDisk(firstSnapshot))!;
    expect(firstChangeId).toMatch(CHANGE_ID);
    expect(changeIdOf(await ourDisk(vm))).toBe(firstChangeId);
    const otherChangeId = changeIdOf((await vmDevices(vm)).find((d) => d.key === otherDisk.key));
    expect(otherChangeId).toMatch(CHANGE_ID);
    expect(otherChangeId).not.toBe(firstChangeId);
  });

  it('answers QueryChangedDiskAreas with the 64 KiB blocks changed since a changeId, page by page', async () => {
    // blocks 1 and 2, 63 and 64 (either side of the first page's end), one byte of 130, and 159 zeroed changed;
    // block 100 is written again with the same bytes
    const flat = Buffer.alloc(CAPACITY);
    for (const [at, value] of [[0, 1], [1, 7], [2, 8], [5, 3], [63, 9], [64, 10], [70, 4], [100, 5]]) block(value).copy(flat, at * BLOCK);
    flat[130 * BLOCK + 1234] = 0xff;
    expect((await put(flatPath, flat)).status).toBe(200);
    secondSnapshot = await snapshot('second');
    secondChangeId = changeIdOf(await ourDisk(secondSnapshot))!;
    expect(secondChangeId).toMatch(CHANGE_ID);
    expect(secondChangeId).not.toBe(firstChangeId);
    expect(secondChangeId.split('/')[0]).toBe(firstChangeId.split('/')[0]); // same tracking epoch, next sequence
    expect(Number(secondChangeId.split('/')[1])).toBeGreaterThan(Number(firstChangeId.split('/')[1]));
    expect(changeIdOf(await ourDisk(firstSnapshot))).toBe(firstChangeId); // each snapshot keeps its own

    expect((await https(vcsim, 'POST', vcsim.cbt.reset)).status).toBe(204);
    const pages = await allPages(secondSnapshot, firstChangeId);
    expect(pages).toEqual([
      { startOffset: 0, length: PAGE, areas: [areaOf(1, 2), areaOf(63)] },
      { startOffset: PAGE, length: PAGE, areas: [areaOf(64)] },
      { startOffset: 2 * PAGE, length: CAPACITY - 2 * PAGE, areas: [areaOf(130), areaOf(159)] },
    ]);
    const calls = JSON.parse((await https(vcsim, 'GET', vcsim.cbt.calls)).body.toString()) as unknown[];
    expect(calls).toEqual([0, PAGE, 2 * PAGE].map((startOffset) => ({ vm: vm.value, snapshot: secondSnapshot.value, deviceKey: diskKey, startOffset, changeId: firstChangeId })));
  });

  it('answers "*" with the areas of the disk that hold data', async () => {
    expect(await allPages(secondSnapshot, '*')).toEqual([
      { startOffset: 0, length: PAGE, areas: [areaOf(0, 3), areaOf(5), areaOf(63)] },
      { startOffset: PAGE, length: PAGE, areas: [areaOf(64), areaOf(70), areaOf(100)] },
      { startOffset: 2 * PAGE, length: CAPACITY - 2 * PAGE, areas: [areaOf(130)] },
    ]);
    // the first snapshot still answers for the content it was taken with
    expect((await allPages(firstSnapshot, '*')).flatMap((p) => p.areas)).toEqual([areaOf(0, 2), areaOf(5), areaOf(70), areaOf(100), areaOf(159)]);
  });

  it('faults on an unknown changeId, on one of another disk, and on any once change tracking was disabled', async () => {
    await expect(query(secondSnapshot, diskKey, 0, '52 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00/1')).rejects.toMatchObject({ fault: 'InvalidArgument', faultstring: expect.stringMatching(/changeId.*not valid/) });
    const otherChangeId = changeIdOf((await vmDevices(firstSnapshot)).find((d) => d.key === otherDisk.key))!;
    await expect(query(secondSnapshot, diskKey, 0, otherChangeId)).rejects.toMatchObject({ fault: 'InvalidArgument' });
    expect(diskChangeInfo(await query(secondSnapshot, otherDisk.key, 0, otherChangeId)).areas).toEqual([]); // its own disk: nothing changed

    const task = refIn(await soap.call('ReconfigVM_Task', vm, '<spec><changeTrackingEnabled>false</changeTrackingEnabled></spec>'), 'returnval');
    await soap.waitTask(collector, task);
    expect(changeIdOf(await ourDisk(vm))).toBeUndefined();
    await expect(query(secondSnapshot, diskKey, 0, firstChangeId)).rejects.toBeInstanceOf(SoapFault);
    await expect(query(secondSnapshot, diskKey, 0, '*')).rejects.toBeInstanceOf(SoapFault);

    // on again: a new epoch, the old changeIds stay invalid
    await soap.waitTask(collector, refIn(await soap.call('ReconfigVM_Task', vm, '<spec><changeTrackingEnabled>true</changeTrackingEnabled></spec>'), 'returnval'));
    const third = await snapshot('third');
    const thirdChangeId = changeIdOf(await ourDisk(third))!;
    expect(thirdChangeId.split('/')[0]).not.toBe(firstChangeId.split('/')[0]);
    await expect(query(third, diskKey, 0, secondChangeId)).rejects.toMatchObject({ fault: 'InvalidArgument' });
    expect(diskChangeInfo(await query(third, diskKey, 0, thirdChangeId)).areas).toEqual([]);
  });

  it('stops on SIGTERM, exits 0 and removes its datastore directories', async () => {
    await vcsim.stop();
    expect(await vcsim.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(vcsim.datastores[0].path)).toBe(false);
  });
});
