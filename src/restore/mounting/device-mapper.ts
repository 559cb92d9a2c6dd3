import { promises as fs } from 'node:fs';
import { join } from 'node:path';

/** What this host offers for activating LVM logical volumes, as looked up rather than assumed. */
export interface DeviceMapperSupport {
  available: boolean;
  /** What was looked at and found, in words an operator can check for themselves. */
  findings: string[];
}

async function exists(path: string): Promise<boolean> {
  try {
    await fs.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function readOr(path: string, fallback: string): Promise<string> {
  try {
    return await fs.readFile(path, 'utf8');
  } catch {
    return fallback;
  }
}

/**
 * LVM activation needs the kernel's device-mapper: its misc device
 * (/proc/misc lists "device-mapper") and the control node lvm talks to.
 * The dm_mod module shows up under /sys/module whether it is loaded or
 * built in. `root` is for tests.
 */
export async function probeDeviceMapper(root = '/'): Promise<DeviceMapperSupport> {
  const control = await exists(join(root, 'dev/mapper/control'));
  const misc = /^\s*\d+\s+device-mapper\s*$/m.test(await readOr(join(root, 'proc/misc'), ''));
  const module = await exists(join(root, 'sys/module/dm_mod'));
  return {
    available: control && misc,
    findings: [
      control ? '/dev/mapper/control exists' : '/dev/mapper/control is missing',
      misc ? '/proc/misc lists device-mapper' : '/proc/misc lists no device-mapper driver',
      module ? 'the dm_mod kernel module is present' : 'the dm_mod kernel module is not loaded (no /sys/module/dm_mod)',
    ],
  };
}

export function lvmReason(deviceMapper: DeviceMapperSupport): string {
  if (!deviceMapper.available) {
    return `LVM physical volume: device-mapper is not available on this host (${deviceMapper.findings.join('; ')}), so its logical volumes cannot be activated`;
  }
  return `LVM physical volume: activating its logical volumes is not supported (device-mapper itself is there: ${deviceMapper.findings.join('; ')})`;
}
