import { escapeXml, unescapeXml } from './domain-xml';

/**
 * Pure parts of a restore to libvirt: the domain a restore point is defined as, written from the XML the point
 * recorded (or, for a point without one, from the operator's minimal definition). libvirt's XML is regular
 * machine output; the rewrites touch only the elements named here and are unit-tested on real `virsh` output.
 */
export interface RestoredDomainSpec {
  name: string;
  /** A new identity: libvirt refuses two domains with one uuid, and swtpm keys its state by it. */
  uuid: string;
  /**
   * The restored disks by target device, each with its new file and format. `backing`: an overlay booted
   * from the hub (instant recovery, drills) reads its backing from this NBD socket; the guest's I/O stops
   * (error policy `stop`) rather than fail while that path is away.
   */
  disks: { target: string; file: string; format: 'qcow2' | 'raw'; backing?: { socket: string; exportName: string } }[];
  /** Where the restored UEFI variables were written; null: libvirt makes a fresh store from the firmware's template. */
  nvramFile: string | null;
  /** Where file-backed serial and console logs of the new domain go (the original's would be shared otherwise). */
  consoleLog: string;
  /** Drop network interfaces (a recovery drill's domain must not meet the original's network). */
  withoutNetwork?: boolean;
}

export interface RestoredDomain {
  xml: string;
  /** What changed beyond name, uuid, MAC addresses and disk paths, for the operator. */
  notes: string[];
}

/** The recorded domain as a new one: new name, uuid and MAC addresses, the restored disk files, nothing of the original's runtime. */
export function restoredDomainXml(recorded: string, spec: RestoredDomainSpec): RestoredDomain {
  const notes: string[] = [];
  let xml = recorded.replace(/<domain\b([^>]*?)\sid=(['"])[^'"]*\2/, '<domain$1');
  if (!/<name>[^<]*<\/name>/.test(xml)) throw new Error('the recorded domain XML has no <name>');
  xml = xml.replace(/<name>[^<]*<\/name>/, `<name>${escapeXml(spec.name)}</name>`);
  xml = /<uuid>[^<]*<\/uuid>/.test(xml) ? xml.replace(/<uuid>[^<]*<\/uuid>/, `<uuid>${spec.uuid}</uuid>`) : xml.replace(`<name>${escapeXml(spec.name)}</name>`, `<name>${escapeXml(spec.name)}</name>\n  <uuid>${spec.uuid}</uuid>`);
  // libvirt generates a new address for an interface without one: two domains with one MAC break both.
  xml = xml.replace(/\s*<mac\s+address=(['"])[^'"]*\1\s*\/>/g, '');
  if (spec.withoutNetwork) {
    const before = xml;
    xml = xml.replace(/\s*<interface\b[\s\S]*?<\/interface>/g, '');
    if (xml !== before) notes.push('network interfaces removed');
  }
  xml = xml.replace(/<nvram\b([^>]*?)(?:\/>|>[^<]*<\/nvram>)/, (_m, attrs: string) => (spec.nvramFile ? `<nvram${attrs}>${escapeXml(spec.nvramFile)}</nvram>` : `<nvram${attrs}/>`));
  const wanted = new Map(spec.disks.map((d) => [d.target, d]));
  const found = new Set<string>();
  xml = xml.replace(/\s*<disk\b([^>]*)>([\s\S]*?)<\/disk>/g, (whole, attrs: string, body: string) => {
    const target = /<target\b[^>]*\sdev=(['"])([^'"]*)\1/.exec(body)?.[2];
    const device = /\sdevice=(['"])([^'"]*)\1/.exec(attrs)?.[2] ?? 'disk';
    const disk = target !== undefined ? wanted.get(unescapeXml(target)) : undefined;
    if (disk) {
      found.add(disk.target);
      return whole.replace(/<disk\b[^>]*>[\s\S]*<\/disk>/, `<disk${setAttr(attrs, 'type', 'file')}>${restoredDiskBody(body, disk)}</disk>`);
    }
    if (device === 'disk' || device === 'lun') {
      notes.push(`disk ${target ?? '(no target)'} is not in the restore point and was left out`);
      return '';
    }
    // a CD-ROM or floppy keeps its drive; its medium is the original host's file, which may not be here
    if (/<source\b/.test(body)) {
      notes.push(`${device} ${target ?? ''} left empty (its medium is not part of the restore point)`.replace(/ +\(/, ' ('));
      return whole.replace(/\s*<source\b[^>]*\/>|\s*<source\b[^>]*>[\s\S]*?<\/source>/, '');
    }
    return whole;
  });
  const missing = spec.disks.filter((d) => !found.has(d.target)).map((d) => d.target);
  if (missing.length) throw new Error(`the recorded domain XML has no disk with target ${missing.join(', ')}`);
  xml = xml.replace(/<(serial|console)\b([^>]*\stype=(['"])file\3[^>]*)>([\s\S]*?)<\/\1>/g, (_m, tag: string, attrs: string, _q: string, body: string) => `<${tag}${attrs}>${body.replace(/<source\b[^>]*\/>/, `<source path='${escapeXml(spec.consoleLog)}'/>`)}</${tag}>`);
  return { xml, notes };
}

/** A disk's XML without its backing chain: nested backingStore elements, innermost first, until none is left. */
export function withoutBackingStores(diskBody: string): string {
  let out = diskBody;
  for (let before = ''; before !== out; ) {
    before = out;
    out = out.replace(/\s*<backingStore\b[^>]*\/>/g, '').replace(/\s*<backingStore\b[^>]*>(?:(?!<backingStore\b)[\s\S])*?<\/backingStore>/g, '');
  }
  return out;
}

function restoredDiskBody(body: string, disk: RestoredDomainSpec['disks'][number]): string {
  let out = withoutBackingStores(body);
  const driverAttrs = (attrs: string) => {
    let a = setAttr(attrs, 'type', disk.format);
    if (disk.backing) a = setAttr(setAttr(a, 'error_policy', 'stop'), 'rerror_policy', 'stop');
    return a;
  };
  out = /<driver\b[^>]*>/.test(out) ? out.replace(/<driver\b([^>]*?)(\/?)>/, (_m, attrs: string, slash: string) => `<driver${driverAttrs(attrs)}${slash}>`) : `\n      <driver${driverAttrs(" name='qemu'")}/>${out}`;
  const source = `<source file='${escapeXml(disk.file)}'/>${disk.backing ? backingStore(disk.backing) : ''}`;
  return /<source\b/.test(out) ? out.replace(/<source\b[^>]*\/>|<source\b[^>]*>[\s\S]*?<\/source>/, source) : out.replace(/(<driver\b[^>]*>)/, `$1\n      ${source}`);
}

/** The hub's export, through the local proxy: raw, as qemu-nbd serves the point's content. */
function backingStore(b: { socket: string; exportName: string }): string {
  return `<backingStore type='network'><format type='raw'/><source protocol='nbd' name='${escapeXml(b.exportName)}'><host transport='unix' socket='${escapeXml(b.socket)}'/></source><backingStore/></backingStore>`;
}

function setAttr(attrs: string, name: string, value: string): string {
  const re = new RegExp(`\\s${name}=(['"])[^'"]*\\1`);
  return re.test(attrs) ? attrs.replace(re, ` ${name}='${escapeXml(value)}'`) : `${attrs} ${name}='${escapeXml(value)}'`;
}

/** A domain for disks whose point recorded no configuration: the operator's memory and vCPUs, virtio disks in the point's order, a guest agent channel. */
export function minimalDomainXml(def: { memoryMiB: number; vcpus: number; virtType: 'kvm' | 'qemu' }, spec: Omit<RestoredDomainSpec, 'nvramFile'>): string {
  const disks = spec.disks
    .map((d, i) => `    <disk type='file' device='disk'><driver name='qemu' type='${d.format}'${d.backing ? " error_policy='stop' rerror_policy='stop'" : ''}/><source file='${escapeXml(d.file)}'/>${d.backing ? backingStore(d.backing) : ''}<target dev='vd${String.fromCharCode(97 + i)}' bus='virtio'/></disk>`)
    .join('\n');
  return `<domain type='${def.virtType}'>
  <name>${escapeXml(spec.name)}</name>
  <uuid>${spec.uuid}</uuid>
  <memory unit='MiB'>${def.memoryMiB}</memory>
  <vcpu>${def.vcpus}</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
  <features><acpi/><apic/></features>
  <devices>
${disks}
    <serial type='file'><source path='${escapeXml(spec.consoleLog)}'/><target port='0'/></serial>
    <channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
  </devices>
</domain>`;
}
