import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { ConfigurationFormatError, parseVmConfiguration, VmConfiguration } from '../../wire/vm-configuration';
import { removeDurably, writeFileAtomic } from './durable-fs';

/** What a manifest records of a point's configuration file: where, its SHA-256, and which parts it holds. */
export interface ConfigurationFileRef {
  /** Relative to the repository root. */
  file: string;
  sha256: string;
  nvram: boolean;
  tpm: boolean;
}

/** Beside the manifest and the digests (`<vm>/manifests/<point>.config.json`): a rescan that finds one finds the others. */
export function configurationFileOf(vmId: string, restorePointId: string): string {
  return `${vmId}/manifests/${restorePointId}.config.json`;
}

export class ConfigurationFileError extends Error {
  constructor(file: string, reason: string) {
    super(`configuration file ${file} ${reason}`);
    this.name = 'ConfigurationFileError';
  }
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const refOf = (file: string, data: Buffer, config: VmConfiguration): ConfigurationFileRef => ({ file, sha256: sha256(data), nvram: config.nvram !== null, tpm: config.tpm !== null });

/** Written atomically (temp file, fsync, rename, fsync of the directory). */
export async function writeConfigurationFile(root: string, file: string, config: VmConfiguration): Promise<ConfigurationFileRef> {
  const data = Buffer.from(JSON.stringify(config));
  await fs.mkdir(join(root, file, '..'), { recursive: true });
  await writeFileAtomic(join(root, file), data);
  return refOf(file, data, config);
}

/** The ref of a configuration file that is there and well-formed, or null when there is none. */
export async function configurationFileRef(root: string, file: string): Promise<ConfigurationFileRef | null> {
  const data = await fs.readFile(join(root, file)).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  return data ? refOf(file, data, decode(file, data)) : null;
}

/** Reads the file and proves it is the one the manifest names: a configuration handed to libvirt must be the one recorded. */
export async function readConfigurationFile(root: string, ref: ConfigurationFileRef): Promise<VmConfiguration> {
  const data = await fs.readFile(join(root, ref.file)).catch((error: NodeJS.ErrnoException) => {
    throw new ConfigurationFileError(ref.file, error.code === 'ENOENT' ? 'is missing' : `cannot be read: ${error.message}`);
  });
  if (sha256(data) !== ref.sha256) throw new ConfigurationFileError(ref.file, 'does not match the SHA-256 its manifest records (the file is damaged)');
  return decode(ref.file, data);
}

export function removeConfigurationFile(root: string, file: string): Promise<boolean> {
  return removeDurably(join(root, file));
}

function decode(file: string, data: Buffer): VmConfiguration {
  try {
    return parseVmConfiguration(data);
  } catch (error) {
    if (error instanceof ConfigurationFormatError) throw new ConfigurationFileError(file, `is not a configuration: ${error.message}`);
    throw error;
  }
}
