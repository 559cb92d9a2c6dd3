import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { LibvirtSource } from '../src/agent/sources/libvirt';
import { ensureLibvirt, GuestDomain, startGuest, virsh } from '../test/fixtures/libvirt/libvirt-guest';
import { Lab, summarizePhases } from './backup.bench';
import { median } from './stats';

/*
 * Backups of a running libvirt domain (TCG guest with qemu-guest-agent, writing all the time): the freeze
 * window (freeze, backup-begin and thaw on one virsh line; LibvirtSource in this process, every snapshot ended and its checkpoint
 * dropped), then full backups through hub + agent (`agent run --libvirt`) while it runs, then the same disks
 * backed up after the domain is shut off (the agent reads the image files) — the reference of the same run.
 * Knobs: SENDENSE_BENCH_RUNS (full backups each way, default 3), SENDENSE_BENCH_LIVE_MIB (data on disk 1, default 768),
 * SENDENSE_BENCH_DIR (default the OS temp dir).
 */

const MiB = 1024 * 1024;
const out = (line: string) => process.stdout.write(`${line}\n`);
const rate = (bytes: number, ms: number) => bytes / MiB / (ms / 1000);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const stats = (xs: number[]) => `median ${median(xs).toFixed(0)} ms, min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)} (${xs.map((x) => x.toFixed(0)).join(', ')})`;

/** Full backups of the domain through hub + agent: MiB/s of the bytes moved, end to end and of the transfer alone. */
async function fulls(lab: Lab, vmId: string, runs: number, label: string): Promise<{ endToEnd: number; transfer: number; freezeMs: (number | null)[] }> {
  const endToEnd: number[] = [];
  const transfer: number[] = [];
  const freezeMs: (number | null)[] = [];
  for (let i = 0; i < runs; i++) {
    const requestedAt = Date.now();
    const { ms, correlationId, job } = await lab.backup(vmId, 'full');
    const story = await lab.story(correlationId);
    const bytes = story.filter((e) => e.type === 'DiskTransferCompleted').reduce((sum, e) => sum + Number(e.data.bytesWritten) + Number(e.data.bytesZeroed), 0);
    const p = summarizePhases(story, requestedAt);
    const point = (await lab.api('GET', `/api/v1/restore-points/${job.restorePointId}`)).body;
    freezeMs.push(point.freezeMs);
    endToEnd.push(rate(bytes, ms));
    transfer.push(rate(bytes, p.transfer));
    out(`  ${label} run ${i + 1}: ${(bytes / MiB).toFixed(0)} MiB in ${ms.toFixed(0)} ms = ${rate(bytes, ms).toFixed(0)} MiB/s end to end (setup ${p.setup} ms, transfer ${p.transfer} ms = ${rate(bytes, p.transfer).toFixed(0)} MiB/s, finish ${p.finish} ms); consistency ${point.consistency}${point.freezeMs !== null ? `, frozen ${point.freezeMs} ms` : ''}`);
  }
  return { endToEnd: median(endToEnd), transfer: median(transfer), freezeMs };
}

export async function runLiveBench(): Promise<void> {
  const runs = Number(process.env.SENDENSE_BENCH_RUNS ?? 3);
  const fillMib = Number(process.env.SENDENSE_BENCH_LIVE_MIB ?? 768);
  const libvirt = await ensureLibvirt();
  if (!libvirt.ok) {
    out(`SKIPPED: ${libvirt.reason}`);
    return;
  }
  const dir = mkdtempSync(join(process.env.SENDENSE_BENCH_DIR ?? tmpdir(), 'sendense-live-bench-'));
  chmodSync(dir, 0o755);
  const lab = new Lab(dir);
  let guest: GuestDomain | undefined;
  try {
    out(`load average at start: ${load()}`);
    let t = Date.now();
    guest = await startGuest({ name: `sendense-bench-${process.pid}`, dir: join(dir, 'guest'), agent: true, d0Mib: 64, d1Mib: fillMib + 32, fillD1Mib: fillMib });
    out(`guest (TCG, 1 vCPU, qemu-guest-agent, writing all the time): vda 64 MiB ext4, vdb ${fillMib + 32} MiB with ${fillMib} MiB of data; running in ${Date.now() - t} ms`);

    // the instant itself, measured in this process: freeze, backup-begin, thaw; the job ended at once
    const workDir = join(dir, 'source');
    mkdirSync(workDir, { mode: 0o755 });
    const source = new LibvirtSource({ workDir });
    const freeze: number[] = [];
    for (let i = 0; i < 5; i++) {
      const newPointId = `bench-${randomUUID()}`;
      await source.prepareBackup(guest.uuid, { newPointId, sincePointId: null });
      const snapshot = await source.openSnapshot(guest.uuid);
      const timing = source.timings.get(guest.uuid)!;
      await snapshot.close();
      await source.completeBackup(guest.uuid, { newPointId, sincePointId: null, success: false });
      if (timing.freezeMs === null) throw new Error(`the guest was not frozen: ${snapshot.consistency?.consistencyReason}`);
      freeze.push(timing.freezeMs);
    }
    out(`freeze window (domfsfreeze, backup-begin of 2 disks in pull mode and domfsthaw sent on one virsh line, until its answer: an upper bound), 5 snapshots: ${stats(freeze)}`);

    t = Date.now();
    await lab.start(['--libvirt', 'qemu:///system']);
    out(`hub and agent (--libvirt) started and connected in ${Date.now() - t} ms`);
    out(`full backups of the running domain through hub + agent (data NBD over TLS), ${runs} runs:`);
    const live = await fulls(lab, guest.uuid, runs, 'running');
    await virsh('destroy', guest.uuid);
    out(`full backups of the same disks with the domain shut off (image files), ${runs} runs:`);
    const offline = await fulls(lab, guest.uuid, runs, 'shut off');
    out(`running / shut off: end to end ${live.endToEnd.toFixed(0)} / ${offline.endToEnd.toFixed(0)} MiB/s = ${(live.endToEnd / offline.endToEnd).toFixed(2)}; transfer ${live.transfer.toFixed(0)} / ${offline.transfer.toFixed(0)} MiB/s = ${(live.transfer / offline.transfer).toFixed(2)}`);
    out(`load average at end: ${load()}`);
  } finally {
    await lab.close();
    await guest?.destroy();
    rmSync(dir, { recursive: true, force: true });
    await libvirt.stop();
  }
}
