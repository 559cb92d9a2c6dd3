import type { IncomingMessage } from 'node:http';
import * as https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { PinnedAgent, VsphereCertificateError } from './pinned-tls';
import { child, childrenNamed, escapeXml, parseXml, textAt, XmlElement, XSI_NS } from './xml';
import { parseDatastorePath } from './vmdk-descriptor';

export { VsphereCertificateError } from './pinned-tls';
export type { XmlElement } from './xml';

export interface VsphereOptions {
  /** https://vcenter/sdk (a URL without a path gets /sdk; user and password in the URL are ignored). */
  sdkUrl: string;
  user: string;
  password: string;
  /** SHA-1 or SHA-256 of the server's certificate; without it the certificate must verify against the system CAs. */
  thumbprint?: string;
  /** Limit on each SOAP call and HTTP transfer (connect to last byte); 60 s by default. */
  timeoutMs?: number;
}

/** A SOAP fault, or a task's error: `faultType` is the vim25 type (InvalidArgument, FileFault, NotAuthenticated…). */
export class VsphereFault extends Error {
  constructor(
    readonly faultType: string,
    readonly faultString: string,
    /** What was being done: the SOAP method or the task. */
    readonly operation = '',
    readonly detail: XmlElement | null = null,
  ) {
    super(`${operation ? `vSphere ${operation} failed` : 'vSphere failed'}: ${faultString || faultType} (${faultType})`);
    this.name = 'VsphereFault';
  }
}

/** An HTTP answer that is not the one expected; names the status and the path, never a credential. */
export class VsphereHttpError extends Error {
  constructor(
    readonly status: number,
    readonly method: string,
    readonly path: string,
    detail = '',
  ) {
    super(`vSphere answered ${status} to ${method} ${path}${detail ? `: ${detail}` : ''}`);
    this.name = 'VsphereHttpError';
  }
}

export interface MoRef {
  type: string;
  value: string;
}

export interface VsphereDisk {
  /** The device key: the same disk in the VM and in its snapshots. */
  key: number;
  label: string;
  capacityBytes: number;
  /** e.g. "[LocalDS_0] vm/disk.vmdk" */
  fileName: string;
  /** The datastore name, from fileName. */
  datastore: string;
  /** The changeId of the disk's current state when change tracking is on; null otherwise. */
  changeId: string | null;
  /** Thin provisioned; null when the backing does not say. */
  thin: boolean | null;
}

export interface VsphereSnapshotInfo {
  ref: MoRef;
  name: string;
  description: string;
  createTime: string;
}

export interface VsphereVm {
  ref: MoRef;
  instanceUuid: string;
  /** As vSphere's inventory holds it ("/", "\" and "%" in a name are escaped there as %2f, %5c, %25). */
  name: string;
  powerState: 'poweredOn' | 'poweredOff' | 'suspended';
  toolsRunning: boolean;
  changeTrackingEnabled: boolean;
  disks: VsphereDisk[];
  /** The datacenter's inventory path, what dcPath takes: its name, preceded by its folders when it is in one. */
  datacenter: string;
  /** The whole snapshot tree, depth first. */
  snapshots: VsphereSnapshotInfo[];
}

export interface DiskChangeInfo {
  startOffset: number;
  length: number;
  changedArea: { start: number; length: number }[];
}

interface ServiceContent {
  rootFolder: MoRef;
  propertyCollector: MoRef;
  viewManager: MoRef;
  sessionManager: MoRef;
  searchIndex: MoRef;
  apiVersion: string;
}

interface ObjectContent {
  obj: MoRef;
  props: Map<string, XmlElement>;
}

interface Exchange {
  headers?: Record<string, string | number>;
  body?: Buffer | string;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Names the call in a timeout's message. */
  what: string;
}

const SOAPENV_NS = 'http://schemas.xmlsoap.org/soap/envelope/';
/** RetrieveServiceContent goes out before the server said its version: 6.5 is one every vSphere since 6.5 answers. */
const BOOTSTRAP_API_VERSION = '6.5';
const SESSION_COOKIE = 'vmware_soap_session';
const PAGE_OBJECTS = 100;
/** How long one WaitForUpdatesEx waits on the server before answering "nothing changed". */
const WAIT_SECONDS = 30;
const WATCH_BACKOFF_MS = [1_000, 2_000, 5_000, 10_000, 30_000];
/** vSphere's answers on the SOAP port are XML; a larger one is not an answer this client asked for. */
const MAX_SOAP_ANSWER = 256 * 1024 * 1024;

const VM_PROPERTIES = ['name', 'config.instanceUuid', 'config.template', 'runtime.powerState', 'guest.toolsRunningStatus', 'config.changeTrackingEnabled', 'config.hardware.device', 'snapshot', 'parent', 'parentVApp'];
const WATCHED_PROPERTIES = ['name', 'runtime.powerState', 'config.hardware.device', 'snapshot', 'config.changeTrackingEnabled', 'guest.toolsRunningStatus'];
/** Disk controllers by preference, with the units a disk may take on each. */
const CONTROLLERS: { types: string[]; units: number }[] = [
  { types: ['ParaVirtualSCSIController', 'VirtualLsiLogicController', 'VirtualLsiLogicSASController', 'VirtualBusLogicController'], units: 16 },
  { types: ['VirtualNVMEController'], units: 15 },
  { types: ['VirtualAHCIController'], units: 30 },
  { types: ['VirtualIDEController'], units: 2 },
];

const tag = (name: string, value: string | number | boolean) => `<${name}>${escapeXml(value)}</${name}>`;
const moRefXml = (name: string, ref: MoRef) => `<${name} type="${escapeXml(ref.type)}">${escapeXml(ref.value)}</${name}>`;
const refKey = (ref: MoRef) => `${ref.type}:${ref.value}`;

function moRefOf(el: XmlElement | null, what: string): MoRef {
  const type = el?.attrs.type;
  if (!el || !type || !el.text) throw new Error(`vSphere's answer has no managed object reference for ${what}`);
  return { type, value: el.text };
}

function safeNumber(text: string | null, what: string): number {
  const value = text === null ? NaN : Number(text.trim());
  if (!Number.isSafeInteger(value)) throw new Error(`vSphere's answer has ${text === null ? 'no' : `"${text}" as`} ${what}, not an integer this agent can hold`);
  return value;
}

function bool(text: string | null): boolean | null {
  return text === null ? null : text.trim() === 'true';
}

/**
 * `typed`: the element whose xsi:type is the fault's type — namespace-resolved, as vcsim writes it under another
 * prefix than vCenter; failing that its element name (InvalidArgumentFault), failing that `fallback`.
 */
function faultFrom(typed: XmlElement | null | undefined, message: string | null, operation: string, fallback = 'UnknownFault'): VsphereFault {
  const type = typed?.xsiType?.name ?? typed?.name.replace(/Fault$/, '') ?? fallback;
  return new VsphereFault(type, message ?? '', operation, typed ?? null);
}

export function isFault(error: unknown, faultType: string): error is VsphereFault {
  return error instanceof VsphereFault && error.faultType === faultType;
}

function disksOf(devices: XmlElement | null): VsphereDisk[] {
  const disks: VsphereDisk[] = [];
  for (const device of devices?.children ?? []) {
    if (device.xsiType?.name !== 'VirtualDisk') continue;
    const backing = child(device, 'backing');
    const fileName = textAt(backing, 'fileName');
    if (!fileName) continue;
    const bytes = textAt(device, 'capacityInBytes');
    disks.push({
      key: safeNumber(textAt(device, 'key'), 'a device key'),
      label: textAt(device, 'deviceInfo', 'label') ?? '',
      capacityBytes: bytes !== null ? safeNumber(bytes, 'a disk capacity') : safeNumber(textAt(device, 'capacityInKB'), 'a disk capacity') * 1024,
      fileName,
      datastore: /^\[([^\]]*)\]/.exec(fileName)?.[1] ?? '',
      changeId: textAt(backing, 'changeId') || null,
      thin: bool(textAt(backing, 'thinProvisioned')),
    });
  }
  return disks;
}

function snapshotsOf(info: XmlElement | null): VsphereSnapshotInfo[] {
  const found: VsphereSnapshotInfo[] = [];
  const walk = (trees: XmlElement[]) => {
    for (const tree of trees) {
      found.push({
        ref: moRefOf(child(tree, 'snapshot'), 'a snapshot'),
        name: textAt(tree, 'name') ?? '',
        description: textAt(tree, 'description') ?? '',
        createTime: textAt(tree, 'createTime') ?? '',
      });
      walk(childrenNamed(tree, 'childSnapshotList'));
    }
  };
  walk(childrenNamed(info, 'rootSnapshotList'));
  return found;
}

/**
 * The VMs among the objects of a retrieval that also brought each VM's ancestors (name, parent): the datacenter a
 * VM is in is not one of its properties.
 */
function vmsOf(contents: ObjectContent[]): VsphereVm[] {
  const byRef = new Map(contents.map((c) => [refKey(c.obj), c]));
  const parentOf = (c: ObjectContent) => {
    const el = c.props.get('parent') ?? c.props.get('parentVApp');
    return el ? byRef.get(refKey(moRefOf(el, 'a parent'))) : undefined;
  };
  const datacenterPath = (vm: ObjectContent): string => {
    let at = parentOf(vm);
    for (let depth = 0; at && at.obj.type !== 'Datacenter' && depth < 1000; depth++) at = parentOf(at);
    if (!at) return '';
    const path = [at.props.get('name')?.text ?? ''];
    // folders above it, up to (not including) the root folder, which has no parent
    for (let folder = parentOf(at); folder && parentOf(folder); folder = parentOf(folder)) path.unshift(folder.props.get('name')?.text ?? '');
    return path.join('/');
  };
  const vms: VsphereVm[] = [];
  for (const c of contents) {
    if (c.obj.type !== 'VirtualMachine') continue;
    const instanceUuid = c.props.get('config.instanceUuid')?.text;
    // a VM without a config is inaccessible or being created; a template is not something to back up
    if (!instanceUuid || c.props.get('config.template')?.text === 'true') continue;
    vms.push({
      ref: c.obj,
      instanceUuid,
      name: c.props.get('name')?.text ?? '',
      powerState: (c.props.get('runtime.powerState')?.text ?? 'poweredOff') as VsphereVm['powerState'],
      toolsRunning: c.props.get('guest.toolsRunningStatus')?.text === 'guestToolsRunning',
      changeTrackingEnabled: c.props.get('config.changeTrackingEnabled')?.text === 'true',
      disks: disksOf(c.props.get('config.hardware.device') ?? null),
      datacenter: datacenterPath(c),
      snapshots: snapshotsOf(c.props.get('snapshot') ?? null),
    });
  }
  return vms;
}

/** A VM's properties and, through its parent (or vApp) and theirs, its ancestors' names. */
function vmFilterSpec(objectSet: string): string {
  const props = VM_PROPERTIES.map((p) => tag('pathSet', p)).join('');
  return (
    `<specSet><propSet><type>VirtualMachine</type>${props}</propSet>` +
    `<propSet><type>ManagedEntity</type><pathSet>name</pathSet><pathSet>parent</pathSet></propSet>${objectSet}</specSet>`
  );
}

/**
 * From a VM up to the root folder: ManagedEntity.parent, and a VM in a vApp has parentVApp instead. Defined at the
 * top of an object spec they apply to the object itself; the view's traversal refers to them by name.
 */
const ANCESTORS =
  '<selectSet xsi:type="TraversalSpec"><name>up</name><type>ManagedEntity</type><path>parent</path><skip>false</skip><selectSet><name>up</name></selectSet></selectSet>' +
  '<selectSet xsi:type="TraversalSpec"><name>vApp</name><type>VirtualMachine</type><path>parentVApp</path><skip>false</skip><selectSet><name>up</name></selectSet></selectSet>';
const TO_ANCESTORS = '<selectSet><name>up</name></selectSet><selectSet><name>vApp</name></selectSet>';

/** The VMs of a container view (not the view itself), and their ancestors when asked. */
function viewObjectSet(view: MoRef, ancestors: boolean): string {
  const toView = `<selectSet xsi:type="TraversalSpec"><name>view</name><type>ContainerView</type><path>view</path><skip>false</skip>${ancestors ? TO_ANCESTORS : ''}</selectSet>`;
  return `<objectSet>${moRefXml('obj', view)}<skip>true</skip>${toView}${ancestors ? ANCESTORS : ''}</objectSet>`;
}

/**
 * A vSphere client on Node's own https: SOAP (vim25) for the inventory, snapshots and change tracking, and the
 * datastore /folder HTTP interface for files. Every connection goes through a PinnedAgent, so nothing — the Login's
 * password included — is sent to a server whose certificate is not the pinned (or, unpinned, a trusted) one.
 */
export class VsphereClient {
  private readonly sdk: URL;
  private readonly agent: PinnedAgent;
  private readonly timeoutMs: number;
  private content!: ServiceContent;
  private cookie = '';
  /** Counts logins: an operation that saw it change knows its session's objects (views, collectors) are gone. */
  private generation = 0;
  private renewing: Promise<void> | null = null;

  private constructor(private readonly options: VsphereOptions) {
    const url = new URL(options.sdkUrl);
    if (url.protocol !== 'https:') throw new Error(`the vSphere SDK URL must be https, not ${url.protocol}`);
    url.username = '';
    url.password = '';
    url.hash = '';
    if (url.pathname === '/' || url.pathname === '') url.pathname = '/sdk';
    this.sdk = url;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.agent = new PinnedAgent({ thumbprint: options.thumbprint, handshakeTimeoutMs: this.timeoutMs });
  }

  /** RetrieveServiceContent, then Login; the session cookie is kept for every later call. */
  static async connect(options: VsphereOptions): Promise<VsphereClient> {
    const client = new VsphereClient(options);
    try {
      const content = await client.soap('RetrieveServiceContent', { type: 'ServiceInstance', value: 'ServiceInstance' }, '', {}, BOOTSTRAP_API_VERSION);
      const returnval = child(content, 'returnval');
      const ref = (name: string) => moRefOf(child(returnval, name), name);
      client.content = {
        rootFolder: ref('rootFolder'),
        propertyCollector: ref('propertyCollector'),
        viewManager: ref('viewManager'),
        sessionManager: ref('sessionManager'),
        searchIndex: ref('searchIndex'),
        apiVersion: textAt(returnval, 'about', 'apiVersion') || BOOTSTRAP_API_VERSION,
      };
      await client.login();
      return client;
    } catch (error) {
      client.agent.destroy();
      throw error;
    }
  }

  /** `vmware_soap_session=…`, as a Cookie header carries it (other vSphere services accept the same session). */
  get sessionCookie(): string {
    return this.cookie;
  }

  /** The server's API version (about.apiVersion), which every call names in its SOAPAction. */
  get apiVersion(): string {
    return this.content.apiVersion;
  }

  /** One SOAP call; `body` is the XML after `<_this>`, already escaped. Answers the `<…Response>` element. */
  invoke(method: string, self: MoRef | null, body: string): Promise<XmlElement> {
    return this.authenticated(() => this.soap(method, self, body));
  }

  async listVms(): Promise<VsphereVm[]> {
    return this.withSessionObjects(async () => {
      const view = await this.createView();
      try {
        return vmsOf(await this.retrieve(vmFilterSpec(viewObjectSet(view, true))));
      } finally {
        await this.destroy('DestroyView', view);
      }
    });
  }

  async findVm(instanceUuid: string): Promise<VsphereVm | null> {
    const found = await this.invoke('FindByUuid', this.content.searchIndex, `${tag('uuid', instanceUuid)}<vmSearch>true</vmSearch><instanceUuid>true</instanceUuid>`);
    const returnval = child(found, 'returnval');
    if (!returnval) return null;
    const vm = moRefOf(returnval, 'the VM found');
    const contents = await this.retrieve(vmFilterSpec(`<objectSet>${moRefXml('obj', vm)}<skip>false</skip>${ANCESTORS}</objectSet>`));
    return vmsOf(contents).find((v) => v.instanceUuid === instanceUuid) ?? null;
  }

  /**
   * Calls onChange whenever a VM comes, goes or changes a watched property — and once at the start of each
   * (re)connection, so a change made while the watch was down is not missed. Runs until the signal aborts; an
   * error (the server gone, the session lost) is followed by a new watch after a backoff. An onChange that throws
   * ends the watch with its error.
   */
  async watchVms(onChange: () => void, signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      let collector: MoRef | null = null;
      let view: MoRef | null = null;
      let listenerError: { error: unknown } | null = null;
      try {
        // a collector of its own: its filter and its waits stay apart from every other call's
        collector = moRefOf(child(await this.invoke('CreatePropertyCollector', this.content.propertyCollector, ''), 'returnval'), 'a property collector');
        view = await this.createView();
        const props = WATCHED_PROPERTIES.map((p) => tag('pathSet', p)).join('');
        await this.invoke('CreateFilter', collector, `<spec><propSet><type>VirtualMachine</type>${props}</propSet>${viewObjectSet(view, false)}</spec><partialUpdates>false</partialUpdates>`);
        let version = '';
        let first = true;
        while (!signal.aborted) {
          const answer = await this.soap('WaitForUpdatesEx', collector, `${tag('version', version)}<options><maxWaitSeconds>${WAIT_SECONDS}</maxWaitSeconds></options>`, {
            signal,
            timeoutMs: WAIT_SECONDS * 1000 + this.timeoutMs,
          });
          failures = 0;
          const set = child(answer, 'returnval');
          if (!set) continue;
          version = textAt(set, 'version') ?? '';
          if (!child(set, 'filterSet') && !first) continue;
          first = false;
          try {
            onChange();
          } catch (error) {
            listenerError = { error };
            break;
          }
        }
      } catch {
        if (!signal.aborted) {
          await sleep(WATCH_BACKOFF_MS[Math.min(failures, WATCH_BACKOFF_MS.length - 1)], undefined, { signal }).catch(() => undefined);
          failures++;
        }
      } finally {
        // destroying the collector also ends its filter and a wait still pending on the server
        if (collector) await this.destroy('DestroyPropertyCollector', collector);
        if (view) await this.destroy('DestroyView', view);
      }
      if (listenerError) throw listenerError.error;
    }
  }

  /** Waits for the task; its error becomes a VsphereFault. */
  async createSnapshot(vm: MoRef, name: string, description: string, options: { memory: false; quiesce: boolean }): Promise<MoRef> {
    const body = `${tag('name', name)}${tag('description', description)}${tag('memory', options.memory)}${tag('quiesce', options.quiesce)}`;
    const result = await this.runTask('CreateSnapshot_Task', vm, body);
    return moRefOf(result, 'the new snapshot');
  }

  /** Removes the snapshot alone (its children stay); consolidate is vSphere's default (true) unless given. */
  async removeSnapshot(snapshot: MoRef, options: { consolidate?: boolean } = {}): Promise<void> {
    await this.runTask('RemoveSnapshot_Task', snapshot, `<removeChildren>false</removeChildren>${options.consolidate === undefined ? '' : tag('consolidate', options.consolidate)}`);
  }

  /** The virtual disks as the snapshot holds them: their files are the snapshot's (read-only) state. */
  async snapshotDisks(snapshot: MoRef): Promise<VsphereDisk[]> {
    return disksOf(await this.property(snapshot, 'config.hardware.device'));
  }

  async setChangeTracking(vm: MoRef, enabled: boolean): Promise<void> {
    await this.runTask('ReconfigVM_Task', vm, `<spec>${tag('changeTrackingEnabled', enabled)}</spec>`);
  }

  /** A new disk file on the first disk controller (SCSI before NVMe, SATA, IDE) with a free unit. */
  async addDisk(vm: MoRef, options: { capacityBytes: number; fileName: string; thin?: boolean }): Promise<void> {
    if (!Number.isSafeInteger(options.capacityBytes) || options.capacityBytes <= 0 || options.capacityBytes % 1024) {
      throw new Error(`a disk's capacity must be a positive whole number of KiB, not ${options.capacityBytes} bytes`);
    }
    parseDatastorePath(options.fileName);
    const devices = (await this.property(vm, 'config.hardware.device'))?.children ?? [];
    const slot = freeUnit(devices);
    if (!slot) throw new Error(`VM ${vm.value} has no disk controller with a free unit`);
    const device =
      '<device xsi:type="VirtualDisk"><key>-1</key>' +
      `<backing xsi:type="VirtualDiskFlatVer2BackingInfo">${tag('fileName', options.fileName)}<diskMode>persistent</diskMode>${tag('thinProvisioned', options.thin ?? true)}</backing>` +
      `${tag('controllerKey', slot.controllerKey)}${tag('unitNumber', slot.unitNumber)}` +
      `${tag('capacityInKB', options.capacityBytes / 1024)}${tag('capacityInBytes', options.capacityBytes)}</device>`;
    await this.runTask('ReconfigVM_Task', vm, `<spec><deviceChange><operation>add</operation><fileOperation>create</fileOperation>${device}</deviceChange></spec>`);
  }

  /** Areas of the disk changed since changeId ("*": the allocated areas), as of the snapshot. */
  async queryChangedDiskAreas(vm: MoRef, snapshot: MoRef, deviceKey: number, startOffset: number, changeId: string): Promise<DiskChangeInfo> {
    const answer = await this.invoke('QueryChangedDiskAreas', vm, `${moRefXml('snapshot', snapshot)}${tag('deviceKey', deviceKey)}${tag('startOffset', startOffset)}${tag('changeId', changeId)}`);
    const info = child(answer, 'returnval');
    if (!info) throw new Error(`vSphere answered QueryChangedDiskAreas for disk ${deviceKey} of ${vm.value} without a result`);
    return {
      startOffset: safeNumber(textAt(info, 'startOffset'), 'a start offset'),
      length: safeNumber(textAt(info, 'length'), 'a length'),
      changedArea: childrenNamed(info, 'changedArea').map((area) => ({ start: safeNumber(textAt(area, 'start'), 'an area start'), length: safeNumber(textAt(area, 'length'), 'an area length') })),
    };
  }

  /** The datastore HTTP interface's URL of a file: https://host[:port]/folder/<path>?dcPath=<dc>&dsName=<ds>. */
  datastoreUrl(datacenter: string, datastore: string, path: string): URL {
    const url = new URL(`/folder/${path.replace(/^\/+/, '').split('/').map(encodeURIComponent).join('/')}`, this.sdk.origin);
    url.searchParams.set('dcPath', datacenter);
    url.searchParams.set('dsName', datastore);
    return url;
  }

  /**
   * Exactly `length` bytes at `offset` (into `into`, when given, which must hold them: the answer is a view of its
   * start). Only a 206 whose Content-Range is that range, or a 200 that is the whole file and exactly that long,
   * is taken: a server that ignored the Range header must not pass the file's start off as the range.
   */
  async readRange(url: URL, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) throw new Error(`a range needs a whole offset and length, not ${offset}+${length}`);
    if (into && into.length < length) throw new Error(`a buffer of ${into.length} bytes cannot hold ${length}`);
    const target = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    if (length === 0) return target;
    const last = offset + length - 1;
    return this.file('GET', url, { headers: { Range: `bytes=${offset}-${last}` } }, async (res, path) => {
      if (res.statusCode === 206) {
        const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? '').trim());
        if (!range || Number(range[1]) !== offset || Number(range[2]) !== last) {
          throw new Error(`vSphere answered GET ${path} bytes ${offset}-${last} with another range (${res.headers['content-range'] ?? 'no Content-Range'})`);
        }
      } else if (res.statusCode === 200) {
        if (offset !== 0 || Number(res.headers['content-length']) !== length) {
          throw new Error(`vSphere answered GET ${path} bytes ${offset}-${last} with the whole file (${res.headers['content-length'] ?? 'unknown'} bytes) instead of the range`);
        }
      } else {
        throw new VsphereHttpError(res.statusCode ?? 0, 'GET', `${path} (bytes ${offset}-${last})`, (await readBody(res, 4096)).toString('utf8').trim().slice(0, 200));
      }
      await readInto(res, target, `GET ${path} bytes ${offset}-${last}`);
      return target;
    });
  }

  /** The file's size: HEAD's Content-Length, or the total of a one-byte range when HEAD does not tell. */
  async fileSize(url: URL): Promise<number> {
    const head = await this.file('HEAD', url, {}, async (res, path) => {
      await readBody(res, 1 << 20);
      const length = res.headers['content-length'];
      if (res.statusCode === 200 && length !== undefined) return safeNumber(length, 'a Content-Length');
      if (res.statusCode === 404 || res.statusCode === 403) throw new VsphereHttpError(res.statusCode, 'HEAD', path);
      return null;
    });
    if (head !== null) return head;
    return this.file('GET', url, { headers: { Range: 'bytes=0-0' } }, async (res, path) => {
      const body = await readBody(res, 1 << 20);
      const total = /\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''));
      if ((res.statusCode === 206 || res.statusCode === 416) && total) return safeNumber(total[1], 'a file size');
      if (res.statusCode === 200) return body.length;
      throw new VsphereHttpError(res.statusCode ?? 0, 'GET', path, body.toString('utf8').trim().slice(0, 200));
    });
  }

  async getFile(url: URL): Promise<Buffer> {
    return this.file('GET', url, {}, async (res, path) => {
      const body = await readBody(res, Infinity);
      if (res.statusCode !== 200) throw new VsphereHttpError(res.statusCode ?? 0, 'GET', path, body.toString('utf8').trim().slice(0, 200));
      return body;
    });
  }

  async putFile(url: URL, data: Buffer): Promise<void> {
    await this.file('PUT', url, { headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': data.length }, body: data }, async (res, path) => {
      const body = await readBody(res, 1 << 20);
      if (res.statusCode !== 200 && res.statusCode !== 201 && res.statusCode !== 204) throw new VsphereHttpError(res.statusCode ?? 0, 'PUT', path, body.toString('utf8').trim().slice(0, 200));
    });
  }

  /** Ends the session and closes the connections; a session already gone is not an error. */
  async logout(): Promise<void> {
    try {
      if (this.cookie) await this.soap('Logout', this.content.sessionManager, '');
    } catch (error) {
      if (!isFault(error, 'NotAuthenticated')) throw error;
    } finally {
      this.cookie = '';
      this.agent.destroy();
    }
  }

  private async login(): Promise<void> {
    this.cookie = '';
    await this.soap('Login', this.content.sessionManager, `${tag('userName', this.options.user)}${tag('password', this.options.password)}`);
    if (!this.cookie) throw new Error(`vSphere at ${this.sdk.host} accepted the login but set no ${SESSION_COOKIE} cookie`);
    this.generation++;
  }

  /** Logs in again once for all the calls that found the session of `seen` expired. */
  private async renewSession(seen: number): Promise<void> {
    if (this.generation !== seen) return;
    if (!this.renewing) this.renewing = this.login().finally(() => (this.renewing = null));
    await this.renewing;
  }

  /** Runs the call again, once, after a new login when the session had expired (NotAuthenticated). */
  private async authenticated<T>(call: () => Promise<T>): Promise<T> {
    const seen = this.generation;
    try {
      return await call();
    } catch (error) {
      if (!isFault(error, 'NotAuthenticated')) throw error;
      await this.renewSession(seen);
      return call();
    }
  }

  /** Runs an operation whose objects (views) belong to the session again, once, when it failed across a new login. */
  private async withSessionObjects<T>(operation: () => Promise<T>): Promise<T> {
    const seen = this.generation;
    try {
      return await operation();
    } catch (error) {
      if (this.generation === seen) throw error;
      return operation();
    }
  }

  private async createView(): Promise<MoRef> {
    const answer = await this.invoke('CreateContainerView', this.content.viewManager, `${moRefXml('container', this.content.rootFolder)}<type>VirtualMachine</type><recursive>true</recursive>`);
    return moRefOf(child(answer, 'returnval'), 'a container view');
  }

  /** Best effort: the session's end removes it anyway. */
  private async destroy(method: 'DestroyView' | 'DestroyPropertyCollector', ref: MoRef): Promise<void> {
    await this.soap(method, ref, '', { timeoutMs: Math.min(this.timeoutMs, 10_000) }).catch(() => undefined);
  }

  /** RetrievePropertiesEx and its continuations. A property missing for want of a session is the session's expiry. */
  private async retrieve(specSet: string): Promise<ObjectContent[]> {
    const collector = this.content.propertyCollector;
    const found: ObjectContent[] = [];
    let answer = await this.authenticated(async () => {
      const first = await this.soap('RetrievePropertiesEx', collector, `${specSet}<options>${tag('maxObjects', PAGE_OBJECTS)}</options>`);
      for (const objects of childrenNamed(child(first, 'returnval'), 'objects')) {
        for (const missing of childrenNamed(objects, 'missingSet')) {
          const fault = child(child(missing, 'fault'), 'fault');
          if (fault?.xsiType?.name === 'NotAuthenticated') throw faultFrom(fault, textAt(missing, 'fault', 'localizedMessage'), 'RetrievePropertiesEx');
        }
      }
      return first;
    });
    for (;;) {
      const returnval = child(answer, 'returnval');
      for (const objects of childrenNamed(returnval, 'objects')) {
        const props = new Map<string, XmlElement>();
        for (const prop of childrenNamed(objects, 'propSet')) {
          const val = child(prop, 'val');
          if (val) props.set(textAt(prop, 'name') ?? '', val);
        }
        found.push({ obj: moRefOf(child(objects, 'obj'), 'an object'), props });
      }
      const token = textAt(returnval, 'token');
      if (!token) return found;
      answer = await this.invoke('ContinueRetrievePropertiesEx', collector, tag('token', token));
    }
  }

  private async property(obj: MoRef, path: string): Promise<XmlElement | null> {
    const contents = await this.retrieve(`<specSet><propSet>${tag('type', obj.type)}${tag('pathSet', path)}</propSet><objectSet>${moRefXml('obj', obj)}</objectSet></specSet>`);
    return contents[0]?.props.get(path) ?? null;
  }

  /** Starts a task and waits for its end; answers its result (null without one). */
  private async runTask(method: string, self: MoRef, body: string): Promise<XmlElement | null> {
    const task = moRefOf(child(await this.invoke(method, self, body), 'returnval'), `the task of ${method}`);
    for (let delay = 50; ; delay = Math.min(delay * 2, 1_000)) {
      const info = await this.property(task, 'info');
      const state = textAt(info, 'state');
      if (state === 'success') return child(info, 'result');
      if (state === 'error') throw faultFrom(child(child(info, 'error'), 'fault'), textAt(info, 'error', 'localizedMessage'), `${method} of ${self.value}`);
      if (state !== 'queued' && state !== 'running') throw new Error(`vSphere's task ${task.value} (${method}) is in a state this client does not know: ${state}`);
      await sleep(delay);
    }
  }

  /** One SOAP exchange, no retries. A fault becomes a VsphereFault; any other failure names status and path. */
  private async soap(method: string, self: MoRef | null, body: string, exchange: Partial<Exchange> = {}, apiVersion?: string): Promise<XmlElement> {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(method)) throw new Error(`"${method}" is not a SOAP method name`);
    const envelope =
      `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="${SOAPENV_NS}" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="${XSI_NS}">` +
      `<soapenv:Body><${method} xmlns="urn:vim25">${self ? moRefXml('_this', self) : ''}${body}</${method}></soapenv:Body></soapenv:Envelope>`;
    const headers: Record<string, string | number> = {
      'Content-Type': 'text/xml; charset=utf-8',
      SOAPAction: `urn:vim25/${apiVersion ?? this.content.apiVersion}`,
      'Content-Length': Buffer.byteLength(envelope),
    };
    // a Login goes without the old session: vSphere refuses a login made within a session
    if (this.cookie && method !== 'Login') headers.Cookie = this.cookie;
    const path = `${this.sdk.pathname} (${method})`;
    const { status, text } = await this.exchange('POST', this.sdk, { ...exchange, headers, body: envelope, what: `POST ${path}` }, async (res) => {
      const text = (await readBody(res, MAX_SOAP_ANSWER)).toString('utf8');
      for (const cookie of res.headers['set-cookie'] ?? []) {
        const pair = cookie.split(';')[0].trim();
        if (pair.startsWith(`${SESSION_COOKIE}=`)) this.cookie = pair;
      }
      return { status: res.statusCode ?? 0, text };
    });
    let doc: XmlElement | null = null;
    try {
      doc = parseXml(text);
    } catch (error) {
      if (status === 200) throw new Error(`vSphere answered POST ${path} with XML this client cannot read: ${(error as Error).message}`);
    }
    const soapBody = doc?.ns === SOAPENV_NS && doc.name === 'Envelope' ? child(doc, 'Body') : null;
    const fault = soapBody?.children.find((c) => c.name === 'Fault' && c.ns === SOAPENV_NS);
    if (fault) throw faultFrom(child(fault, 'detail')?.children[0], textAt(fault, 'faultstring'), method, textAt(fault, 'faultcode')?.replace(/^.*:/, '') || undefined);
    if (status !== 200) throw new VsphereHttpError(status, 'POST', path, text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200));
    const answer = soapBody?.children[0];
    if (!answer || answer.name !== `${method}Response`) throw new Error(`vSphere answered POST ${path} with ${answer ? `<${answer.name}>` : 'no answer'} instead of <${method}Response>`);
    return answer;
  }

  /** A datastore HTTP exchange with the session's cookie; a 401 (session expired) logs in again and retries once. */
  private async file<T>(method: string, url: URL, exchange: Omit<Exchange, 'what'>, read: (res: IncomingMessage, path: string) => Promise<T>): Promise<T> {
    // the session cookie goes to the server it came from only, and with nothing else that authenticates
    if (url.origin !== this.sdk.origin) throw new Error(`${url.origin} is not the vSphere server this client is connected to (${this.sdk.origin})`);
    const target = new URL(url);
    target.username = '';
    target.password = '';
    const path = `${target.pathname}${target.search}`;
    const attempt = () =>
      this.exchange(method, target, { ...exchange, headers: { ...exchange.headers, Cookie: this.cookie }, what: `${method} ${path}` }, async (res) => {
        if (res.statusCode === 401) {
          await readBody(res, 1 << 20);
          throw new VsphereFault('NotAuthenticated', `${method} ${path} answered 401`, `${method} ${path}`);
        }
        return read(res, path);
      });
    return this.authenticated(attempt);
  }

  /**
   * One HTTP exchange through the pinned agent, limited in time from connect to the answer's last byte. A kept-alive
   * connection the server had closed meanwhile fails before any answer: that request is sent again once, on a new one.
   */
  private async exchange<T>(method: string, url: URL, exchange: Exchange, read: (res: IncomingMessage) => Promise<T>, retried = false): Promise<T> {
    const { signal, timeoutMs = this.timeoutMs } = exchange;
    signal?.throwIfAborted();
    let answered = false;
    let reused = false;
    try {
      return await new Promise<T>((resolve, reject) => {
        let settled = false;
        const settle = (error: unknown, value?: T) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          if (error) reject(error);
          else resolve(value as T);
        };
        const req = https.request(url, { method, headers: exchange.headers, agent: this.agent }, (res) => {
          answered = true;
          read(res).then(
            (value) => settle(null, value),
            (error: unknown) => {
              settle(error);
              // an answer not read to its end leaves the connection unusable for the next request
              req.destroy();
            },
          );
        });
        const timer = setTimeout(() => {
          const error = new Error(`vSphere did not complete ${exchange.what} within ${timeoutMs} ms`);
          settle(error);
          req.destroy(error);
        }, timeoutMs);
        const onAbort = () => {
          settle(signal!.reason);
          req.destroy();
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        req.on('error', (error) => {
          reused = req.reusedSocket;
          settle(error);
        });
        req.end(exchange.body);
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (!retried && !answered && reused && (code === 'ECONNRESET' || code === 'EPIPE') && !signal?.aborted) return this.exchange(method, url, exchange, read, true);
      if (error instanceof VsphereCertificateError || error instanceof VsphereFault || error instanceof VsphereHttpError) throw error;
      if (code && !(error as Error).message.includes(url.pathname)) (error as Error).message = `${exchange.what}: ${(error as Error).message}`;
      throw error;
    }
  }
}

/** The answer's body, failing past `limit` bytes. */
function readBody(res: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        res.destroy();
        reject(new Error(`an answer larger than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('the answer ended early')));
  });
}

/** Reads the answer into `target`, which it must fill exactly. */
function readInto(res: IncomingMessage, target: Buffer, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let at = 0;
    let failed = false;
    const fail = (message: string) => {
      if (failed) return;
      failed = true;
      res.destroy();
      reject(new Error(`${what}: ${message}`));
    };
    res.on('data', (chunk: Buffer) => {
      if (failed) return;
      if (at + chunk.length > target.length) return fail(`more than the ${target.length} bytes asked for`);
      chunk.copy(target, at);
      at += chunk.length;
    });
    res.on('end', () => (at === target.length ? resolve() : fail(`${at} bytes instead of ${target.length}`)));
    res.on('error', (error) => fail(error.message));
    res.on('aborted', () => fail(`the answer ended after ${at} of ${target.length} bytes`));
  });
}

function freeUnit(devices: XmlElement[]): { controllerKey: number; unitNumber: number } | null {
  const used = new Map<number, Set<number>>();
  for (const device of devices) {
    const controller = textAt(device, 'controllerKey');
    const unit = textAt(device, 'unitNumber');
    if (controller === null || unit === null) continue;
    const key = Number(controller);
    if (!used.has(key)) used.set(key, new Set());
    used.get(key)!.add(Number(unit));
  }
  for (const kind of CONTROLLERS) {
    for (const controller of devices.filter((d) => kind.types.includes(d.xsiType?.name ?? ''))) {
      const key = safeNumber(textAt(controller, 'key'), 'a controller key');
      const taken = new Set(used.get(key));
      // a SCSI controller takes a unit on its own bus (7)
      const own = textAt(controller, 'scsiCtlrUnitNumber');
      if (own !== null) taken.add(Number(own));
      for (let unit = 0; unit < kind.units; unit++) if (!taken.has(unit)) return { controllerKey: key, unitNumber: unit };
    }
  }
  return null;
}
