/**
 * What a VM is besides its disks, as its source recorded it for the snapshot (just before it): for libvirt, the
 * domain's persistent definition and, when the domain has them, its UEFI variable store and its TPM's state.
 * The agent uploads it beside the block digests; a restore defines the VM again from it.
 */
export interface VmConfiguration {
  schemaVersion: 1;
  kind: 'libvirt';
  /** `virsh dumpxml --inactive` (the definition `virsh define` takes), or the live XML of a transient domain. */
  domainXml: string;
  /** The UEFI variables file named by `<os><nvram>`, base64; null when the domain has none. */
  nvram: string | null;
  /** The files of the swtpm state directory (`tpm2/tpm2-00.permall`, ...), each base64; null when the domain has no emulated TPM. */
  tpm: { name: string; data: string }[] | null;
  capturedAt: string;
}

/** A domain definition, a UEFI store and a TPM state stay far below this. */
export const MAX_CONFIGURATION_BYTES = 16 * 1024 * 1024;

const TPM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(?:\/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,3}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export class ConfigurationFormatError extends Error {}

/** Parses and checks an uploaded configuration: everything in it is written to disk and, at a restore, handed to libvirt. */
export function parseVmConfiguration(data: Buffer | string): VmConfiguration {
  let value: unknown;
  try {
    value = JSON.parse(typeof data === 'string' ? data : data.toString('utf8'));
  } catch {
    throw new ConfigurationFormatError('the configuration is not JSON');
  }
  const c = value as Record<string, unknown>;
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new ConfigurationFormatError('the configuration must be a JSON object');
  if (c.schemaVersion !== 1) throw new ConfigurationFormatError(`unsupported configuration schemaVersion ${JSON.stringify(c.schemaVersion)}`);
  if (c.kind !== 'libvirt') throw new ConfigurationFormatError(`unsupported configuration kind ${JSON.stringify(c.kind)}`);
  if (typeof c.domainXml !== 'string' || !/^\s*<domain[\s>]/.test(c.domainXml) || !/<\/domain>\s*$/.test(c.domainXml)) throw new ConfigurationFormatError('domainXml must be a <domain> document');
  if (c.nvram !== null && (typeof c.nvram !== 'string' || !BASE64.test(c.nvram))) throw new ConfigurationFormatError('nvram must be null or base64');
  if (c.tpm !== null) {
    if (!Array.isArray(c.tpm)) throw new ConfigurationFormatError('tpm must be null or an array of files');
    for (const f of c.tpm as { name?: unknown; data?: unknown }[]) {
      if (typeof f?.name !== 'string' || !TPM_NAME.test(f.name)) throw new ConfigurationFormatError(`tpm file name ${JSON.stringify(f?.name)} is not a relative path of plain names`);
      if (typeof f.data !== 'string' || !BASE64.test(f.data)) throw new ConfigurationFormatError(`tpm file ${f.name} must be base64`);
    }
  }
  if (typeof c.capturedAt !== 'string' || Number.isNaN(Date.parse(c.capturedAt))) throw new ConfigurationFormatError('capturedAt must be an ISO date');
  return { schemaVersion: 1, kind: 'libvirt', domainXml: c.domainXml, nvram: (c.nvram as string | null) ?? null, tpm: (c.tpm as VmConfiguration['tpm']) ?? null, capturedAt: c.capturedAt };
}
