import { promises as fs } from 'node:fs';
import { ProbeResult, probeFilesystem } from './filesystem-probe';
import { isMounted } from './host-mounts';
import { attachReadOnlyLoop, detachLoop } from './loop-devices';
import { probeDeviceMapper } from './device-mapper';
import { planMount } from './mount-plan';
import type { DiskRegion } from './partition-table';
import type { RestoreVolume } from './restore-volume';
import { runTool } from './run-tool';

export interface MountedVolumeResources {
  volume: RestoreVolume;
  /** Set while this volume holds a loop device; teardown detaches it. */
  loopDevice: string | null;
}

/** Tool messages span lines (mount adds a dmesg hint); a volume's reason is one line in the API. */
function messageOf(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/\s*\n\s*/g, ' ').trim();
}

/**
 * Probes and mounts one region. Never throws for the volume's own problems:
 * an unknown or broken filesystem becomes a volume with status and reason,
 * so the other volumes of the disk still mount.
 */
export async function mountVolume(diskFile: string, region: DiskRegion, mountPoint: string): Promise<MountedVolumeResources> {
  const base: RestoreVolume = {
    id: region.id,
    index: region.index,
    start: region.start,
    size: region.size,
    fsType: null,
    label: null,
    uuid: null,
    partitionType: region.partitionType,
    partitionName: region.partitionName,
    mountPath: null,
    status: 'failed',
  };
  let probe: ProbeResult;
  try {
    probe = await probeFilesystem(diskFile, region.start, region.size);
  } catch (error) {
    return { volume: { ...base, reason: `probing failed: ${messageOf(error)}` }, loopDevice: null };
  }
  const volume: RestoreVolume = { ...base, fsType: probe.type, label: probe.label, uuid: probe.uuid };
  // The LVM reason says what this host lacks, so it is looked up, not assumed.
  const plan = planMount(probe, probe.type === 'LVM2_member' ? { deviceMapper: await probeDeviceMapper() } : {});
  if (plan.kind === 'unsupported') return { volume: { ...volume, status: 'unsupported', reason: plan.reason }, loopDevice: null };

  let loopDevice: string | null = null;
  try {
    await fs.mkdir(mountPoint, { recursive: true });
    loopDevice = await attachReadOnlyLoop(diskFile, region.start, region.size);
    if (plan.kind === 'kernel') {
      await runTool('mount', ['-t', plan.fsType, '-o', plan.options, loopDevice, mountPoint]);
    } else {
      await runTool(plan.program, plan.args(loopDevice, mountPoint));
      // A FUSE driver may exit 0 and still not have mounted (e.g. after printing a warning).
      if (!(await isMounted(mountPoint))) throw new Error(`${plan.program} exited without mounting ${mountPoint}`);
    }
    return { volume: { ...volume, status: 'mounted', mountPath: mountPoint }, loopDevice };
  } catch (error) {
    if (loopDevice) await detachLoop(loopDevice).catch(() => undefined);
    await fs.rmdir(mountPoint).catch(() => undefined);
    return { volume: { ...volume, status: 'failed', reason: `mount failed: ${messageOf(error)}` }, loopDevice: null };
  }
}
