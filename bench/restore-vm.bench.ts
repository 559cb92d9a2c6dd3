import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureLibvirt, GuestDomain, startGuest, virsh } from '../test/fixtures/libvirt/libvirt-guest';
import { Lab } from './backup.bench';
import { median } from './stats';

/*
 * Getting a VM back, on one restore point of a TCG guest (vda 64 MiB ext4, vdb with SENDENSE_BENCH_RESTORE_MIB of
 * data, default 768), in one run:
 * - full restore through hub + agent (export over TLS, a new thin qcow2 per disk, every block checked against the
 *   point's digests) against `qemu-img convert -m 16 -W` of the same point read over NBD from the same kind of
 *   export (the hub's read-only TLS-PSK export of the point, POST /restore-points/{id}/exports) into the same
 *   kind of target (a new qcow2 in the same directory), interleaved, SENDENSE_BENCH_RUNS rounds (default 3);
 * - instant recovery: request → domain running, → guest agent answering, next to a plain `virsh start` of the
 *   fully restored disks from local files; the background copy's rate while the guest runs;
 * - the same full restore by virtnbdrestore from a virtnbdbackup of the same running domain;
 * - the same point backed up into a chunks repository (docs/design/storage.md) and restored from there: a full
 *   restore and an instant recovery, against the qcow2 repository's (issue 40: within today's time + 20 %).
 */

const run = promisify(execFile);
const MiB = 1024 * 1024;
const out = (line: string) => process.stdout.write(`${line}\n`);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const fmt = (xs: number[], unit: string, digits = 0) => `median ${median(xs).toFixed(digits)} ${unit} (${xs.map((x) => x.toFixed(digits)).join(', ')})`;

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Allocated bytes of the point's disks (what a thin restore moves): qemu-img map of each chain's data extents. */
async function allocatedBytes(files: string[]): Promise<number> {
  let total = 0;
  for (const file of files) {
    const map = JSON.parse((await run('qemu-img', ['map', '--output=json', '-U', file])).stdout) as { length: number; data: boolean; zero: boolean }[];
    total += map.filter((e) => e.data && !e.zero).reduce((n, e) => n + e.length, 0);
  }
  return total;
}

async function waitForRestore(lab: Lab, restoreId: string): Promise<any> {
  let r: any;
  await until(async () => {
    r = (await lab.api('GET', `/api/v1/restores/${restoreId}`)).body;
    return r.status !== 'running';
  }, 1_800_000, `restore ${restoreId}`);
  if (r.status !== 'completed') throw new Error(`restore ${restoreId} ${r.status}: ${r.error}`);
  return r;
}

/** The instant domain running, or the restore's own error if it ended first (not a timeout that hides why). */
async function runningOrFailed(lab: Lab, restoreId: string, domain: string): Promise<void> {
  let ended: any = null;
  await until(async () => {
    if ((await virsh('domstate', domain).catch(() => '')).trim() === 'running') return true;
    const r = (await lab.api('GET', `/api/v1/restores/${restoreId}`)).body;
    if (r.status !== 'running') ended = r;
    return ended !== null;
  }, 120_000, `${domain} to run`);
  if (ended) throw new Error(`instant restore ${restoreId} ended ${ended.status} before ${domain} ran: ${ended.error}`);
}

async function agentAnswers(domain: string): Promise<boolean> {
  return virsh('qemu-agent-command', domain, '{"execute":"guest-ping"}').then(() => true, () => false);
}

export async function runRestoreVmBench(): Promise<void> {
  const runs = Number(process.env.SENDENSE_BENCH_RUNS ?? 3);
  const fillMib = Number(process.env.SENDENSE_BENCH_RESTORE_MIB ?? 768);
  const libvirt = await ensureLibvirt();
  if (!libvirt.ok) throw new Error(`libvirt is needed: ${libvirt.reason}`);
  const dir = mkdtempSync(join(process.env.SENDENSE_BENCH_DIR ?? tmpdir(), 'sendense-restore-vm-bench-'));
  chmodSync(dir, 0o755);
  const targets = join(dir, 'targets');
  mkdirSync(targets, { mode: 0o755 });
  const lab = new Lab(dir);
  let guest: GuestDomain | undefined;
  const defined: string[] = [];
  try {
    out(`load average at start: ${load()}`);
    guest = await startGuest({ name: `sendense-rbench-${process.pid}`, dir: join(dir, 'guest'), agent: true, d0Mib: 64, d1Mib: fillMib + 32, fillD1Mib: fillMib });
    await lab.start(['--libvirt', 'qemu:///system']);
    const agentId = ((await lab.api('GET', '/api/v1/agents')).body as { agentId: string }[])[0].agentId;
    // virtnbdbackup of the same running domain first (it refuses a domain with checkpoints of another tool), for its restore below
    const vnbd = join(dir, 'virtnbdbackup');
    let t = Date.now();
    await run('virtnbdbackup', ['-d', guest.name, '-l', 'full', '-o', vnbd, '-n'], { maxBuffer: 64 * MiB });
    out(`virtnbdbackup -l full of the running domain: ${Date.now() - t} ms`);
    const { job } = await lab.backup(guest.uuid, 'full');
    const point = (await lab.api('GET', `/api/v1/restore-points/${job.restorePointId}`)).body;
    // the same disks into a chunks repository, the guest still running: its point holds what the qcow2 one holds, give or take the guest's writes since
    const chunksRepositoryId = (await lab.api('POST', '/api/v1/repositories', { name: 'chunks', kind: 'local', path: join(dir, 'chunks-repo'), layout: 'chunks' })).body.repositoryId;
    const qcow2RepositoryId = lab.repositoryId;
    lab.repositoryId = chunksRepositoryId;
    const chunkJob = (await lab.backup(guest.uuid, 'full')).job;
    lab.repositoryId = qcow2RepositoryId;
    if (chunkJob.status !== 'completed') throw new Error(`the backup into the chunks repository ${chunkJob.status}: ${chunkJob.error}`);
    const chainFiles = point.disks.map((d: { file: string }) => join(dir, 'repo', d.file));
    const allocated = await allocatedBytes(chainFiles);
    out(`restore point ${point.restorePointId}: vda 64 MiB ext4, vdb ${fillMib + 32} MiB with ${fillMib} MiB of data; ${(allocated / MiB).toFixed(0)} MiB allocated in all`);

    await guest.destroy();

    out(`full restore, ${runs} interleaved rounds (MiB/s of the allocated data, request to completion / qemu-img start to exit):`);
    const ours: number[] = [];
    const reference: number[] = [];
    for (let i = 0; i < runs; i++) {
      await run('sync');
      const name = `sendense-rbench-full-${i}`;
      t = Date.now();
      const res = await lab.api('POST', '/api/v1/restores', { restorePointId: point.restorePointId, agentId, mode: 'full', target: { kind: 'new-domain', name, storageDir: targets } });
      if (res.status !== 202) throw new Error(`restore refused: ${JSON.stringify(res.body)}`);
      defined.push(name);
      await waitForRestore(lab, res.body.restoreId);
      await run('sync');
      const ms = Date.now() - t;
      ours.push(allocated / MiB / (ms / 1000));

      // the reference: the same point from the same kind of export into the same kind of target
      const exported = (await lab.api('POST', `/api/v1/restore-points/${point.restorePointId}/exports`, { tls: true })).body;
      try {
        t = Date.now();
        for (const d of exported.disks as { diskId: string; host: string; port: number; exportName: string; psk: { identity: string; key: string } }[]) {
          const pskDir = join(dir, `psk-${d.diskId}`);
          mkdirSync(pskDir, { recursive: true, mode: 0o700 });
          writeFileSync(join(pskDir, 'keys.psk'), `${d.psk.identity}:${d.psk.key}\n`, { mode: 0o600 });
          const target = join(targets, `reference-${i}-${d.diskId}.qcow2`);
          await run('qemu-img', [
            'convert', '-m', '16', '-W', '-O', 'qcow2',
            '--object', `tls-creds-psk,id=tls0,endpoint=client,dir=${pskDir},username=${d.psk.identity}`,
            '--image-opts', `driver=nbd,server.type=inet,server.host=${d.host},server.port=${d.port},export=${d.exportName},tls-creds=tls0`,
            target,
          ]);
        }
        await run('sync');
        const refMs = Date.now() - t;
        reference.push(allocated / MiB / (refMs / 1000));
      } finally {
        await lab.api('DELETE', `/api/v1/restore-point-exports/${exported.exportId}`);
      }
      out(`  round ${i + 1}: restore ${ms} ms = ${ours.at(-1)!.toFixed(0)} MiB/s; qemu-img convert -m 16 -W ${(allocated / MiB / reference.at(-1)!).toFixed(1)} s = ${reference.at(-1)!.toFixed(0)} MiB/s; ratio ${(ours.at(-1)! / reference.at(-1)!).toFixed(2)}`);
      if (i < runs - 1) {
        await virsh('undefine', name).catch(() => undefined);
        defined.pop();
        rmSync(join(targets), { recursive: true, force: true });
        mkdirSync(targets, { mode: 0o755 });
      }
    }
    out(`full restore ${fmt(ours, 'MiB/s')}; qemu-img convert ${fmt(reference, 'MiB/s')}; ratio ${(median(ours) / median(reference)).toFixed(2)} (goal >= 0.8)`);

    // a plain start of the restored disks from local files: what instant recovery is measured against
    const full = defined.at(-1)!;
    t = Date.now();
    await virsh('start', full);
    await until(async () => (await virsh('domstate', full)).trim() === 'running', 60_000, 'the local domain to run');
    const localRunning = Date.now() - t;
    await until(() => agentAnswers(full), 300_000, "the local domain's guest agent");
    const localAgent = Date.now() - t;
    await virsh('destroy', full);
    out(`virsh start of the fully restored disks (local files): running after ${localRunning} ms, guest agent answering after ${localAgent} ms`);

    const name = `sendense-rbench-instant`;
    t = Date.now();
    const res = await lab.api('POST', '/api/v1/restores', { restorePointId: point.restorePointId, agentId, mode: 'instant', target: { kind: 'new-domain', name, storageDir: targets } });
    if (res.status !== 202) throw new Error(`instant restore refused: ${JSON.stringify(res.body)}`);
    defined.push(name);
    await runningOrFailed(lab, res.body.restoreId, name);
    const instantRunning = Date.now() - t;
    await until(() => agentAnswers(name), 300_000, "the instant domain's guest agent");
    const instantAgent = Date.now() - t;
    const done = await waitForRestore(lab, res.body.restoreId);
    const events = (await lab.api('GET', `/api/v1/audit/streams/vm-restore-${res.body.restoreId}?limit=1000`)).body.events as { type: string; time: string; data: any }[];
    const runningAt = Date.parse(events.find((e) => e.type === 'InstantRecoveryRunning')!.time);
    const localAt = Date.parse(events.find((e) => e.type === 'InstantRecoveryLocal')!.time);
    const virtual = point.disks.reduce((n: number, d: { virtualSize: number }) => n + d.virtualSize, 0);
    out(`instant recovery: running after ${instantRunning} ms (recorded ${events.find((e) => e.type === 'InstantRecoveryRunning')!.data.runningMs} ms), guest agent answering after ${instantAgent} ms; local ${((localAt - runningAt) / 1000).toFixed(1)} s later (background copy while the guest runs: ${(virtual / MiB / ((localAt - runningAt) / 1000)).toFixed(0)} MiB/s of the virtual disks, ${(allocated / MiB / ((localAt - runningAt) / 1000)).toFixed(0)} MiB/s of the allocated data); request to completed ${done.durationMs} ms`);
    out(`instant / local start: running ${(instantRunning / localRunning).toFixed(2)}x, guest agent ${(instantAgent / localAgent).toFixed(2)}x`);
    await virsh('destroy', name);

    // the chunks repository's point: a full restore and an instant recovery, against the qcow2 point's above
    await run('sync');
    const chunkFull = 'sendense-rbench-chunks-full';
    t = Date.now();
    const fromChunks = await lab.api('POST', '/api/v1/restores', { restorePointId: chunkJob.restorePointId, agentId, mode: 'full', target: { kind: 'new-domain', name: chunkFull, storageDir: targets } });
    if (fromChunks.status !== 202) throw new Error(`restore from the chunks repository refused: ${JSON.stringify(fromChunks.body)}`);
    defined.push(chunkFull);
    await waitForRestore(lab, fromChunks.body.restoreId);
    await run('sync');
    const chunkRestoreMs = Date.now() - t;
    const chunkRate = allocated / MiB / (chunkRestoreMs / 1000);
    out(`full restore from the chunks repository: ${chunkRestoreMs} ms = ${chunkRate.toFixed(0)} MiB/s; chunks / qcow2 time ${(median(ours) / chunkRate).toFixed(2)}x (goal <= 1.2)`);
    const chunkInstant = 'sendense-rbench-chunks-instant';
    t = Date.now();
    const instantFromChunks = await lab.api('POST', '/api/v1/restores', { restorePointId: chunkJob.restorePointId, agentId, mode: 'instant', target: { kind: 'new-domain', name: chunkInstant, storageDir: targets } });
    if (instantFromChunks.status !== 202) throw new Error(`instant restore from the chunks repository refused: ${JSON.stringify(instantFromChunks.body)}`);
    defined.push(chunkInstant);
    await runningOrFailed(lab, instantFromChunks.body.restoreId, chunkInstant);
    const chunkRunning = Date.now() - t;
    await until(() => agentAnswers(chunkInstant), 300_000, "the chunks instant domain's guest agent");
    const chunkAgent = Date.now() - t;
    await waitForRestore(lab, instantFromChunks.body.restoreId);
    out(`instant recovery from the chunks repository: running after ${chunkRunning} ms, guest agent answering after ${chunkAgent} ms; chunks / qcow2: running ${(chunkRunning / instantRunning).toFixed(2)}x, guest agent ${(chunkAgent / instantAgent).toFixed(2)}x (goal <= 1.2)`);
    await virsh('destroy', chunkInstant);

    // virtnbdrestore of the virtnbdbackup above into the same kind of target directory
    const vout = join(dir, 'virtnbdrestore');
    await run('sync');
    t = Date.now();
    await run('virtnbdrestore', ['-i', vnbd, '-o', vout, '-n'], { maxBuffer: 64 * MiB });
    await run('sync');
    const vms = Date.now() - t;
    out(`virtnbdrestore -i (full restore of the disks from its own backup): ${vms} ms = ${(allocated / MiB / (vms / 1000)).toFixed(0)} MiB/s of the same allocated data; our full restore / virtnbdrestore: ${(median(ours) / (allocated / MiB / (vms / 1000))).toFixed(2)}`);
    out(`load average at end: ${load()}`);
  } finally {
    for (const name of defined) {
      await virsh('destroy', name).catch(() => undefined);
      await virsh('undefine', name, '--nvram').catch(() => undefined);
    }
    await lab.close();
    await guest?.destroy();
    rmSync(dir, { recursive: true, force: true });
    await libvirt.stop();
  }
}
