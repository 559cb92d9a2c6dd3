import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuSeconds, Lab, SENDENSE_BIN } from './backup.bench';
import { median } from './restore-mounter.bench';
import { Cost, shell } from './store/measure';

/*
 * A disk restored as an operator restores it (issue 40: "restore the newest point in at most 1.2 of today's
 * uncompressed restore and 0.5 of restic's"): one VM whose raw disk (SENDENSE_BENCH_DOWNLOAD_MIB, default 512)
 * holds an ext4 with this machine's libraries and documentation, backed up by a real hub and agent into an
 * encrypted chunks repository and into a plain qcow2 repository, and by `restic backup --stdin` into an encrypted
 * restic repository. Then SENDENSE_BENCH_RUNS rounds (default 4), each restoring the disk three ways in turn, the
 * output file removed and the page cache written back before each: `sendense restore disk` from either repository
 * (raw, written sparsely, fsynced before it is renamed), and `restic dump` into a file then `sync` of it. Each
 * output is compared with the disk. Wall time, the CPU of the hub (its node process and the export processes it
 * ran) and of the restoring tool; medians of the rounds. SENDENSE_BENCH_PROFILE=DIR runs the hub, the agent and the CLI's
 * restores with node --cpu-prof into DIR.
 */

const MiB = 1024 * 1024;
const out = (line: string) => process.stdout.write(`${line}\n`);

/** Regular files of this machine (shared libraries, documentation) copied into `tree` until `budget` bytes. */
function fillTree(tree: string, budget: number): void {
  let copied = 0;
  const walk = (from: string, to: string): void => {
    for (const entry of readdirSync(from, { withFileTypes: true })) {
      if (copied >= budget) return;
      const source = join(from, entry.name);
      if (entry.isDirectory()) {
        mkdirSync(join(to, entry.name), { recursive: true });
        walk(source, join(to, entry.name));
      } else if (entry.isFile()) {
        const size = statSync(source).size;
        if (copied + size > budget) continue;
        copyFileSync(source, join(to, entry.name));
        copied += size;
      }
    }
  };
  for (const source of ['/usr/lib/x86_64-linux-gnu', '/usr/share/doc', '/usr/share/locale', '/usr/lib/python3']) {
    mkdirSync(join(tree, source.replace(/\//g, '_')));
    walk(source, join(tree, source.replace(/\//g, '_')));
  }
}

export async function runDownloadBench(): Promise<void> {
  const diskMib = Number(process.env.SENDENSE_BENCH_DOWNLOAD_MIB ?? 512);
  const runs = Number(process.env.SENDENSE_BENCH_RUNS ?? 4);
  const dir = mkdtempSync(join(process.env.SENDENSE_BENCH_DIR ?? tmpdir(), 'sendense-download-bench-'));
  chmodSync(dir, 0o755);
  const lab = new Lab(join(dir, 'lab'), process.env.SENDENSE_BENCH_PROFILE, {});
  mkdirSync(join(dir, 'lab'));
  try {
    out(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    // a disk of real files, about 60 % full, the rest zeros: what a restore writes sparsely
    const tree = join(dir, 'tree');
    mkdirSync(tree);
    fillTree(tree, Math.floor(diskMib * 0.6) * MiB);
    const disk = join(dir, 'disk0.raw');
    await shell(`truncate -s ${diskMib}M '${disk}' && mkfs.ext4 -q -d '${tree}' '${disk}'`);
    rmSync(tree, { recursive: true, force: true });
    const inventory = join(dir, 'inventory.json');
    writeFileSync(inventory, JSON.stringify({ vms: [{ id: 'vm1', name: 'vm1', disks: [{ id: 'disk0', path: disk }] }] }));

    await lab.start(['--inventory', inventory]);
    const key = join(dir, 'chunks.key');
    writeFileSync(key, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const repository = async (name: string, settings: Record<string, unknown>) => {
      mkdirSync(join(dir, name));
      lab.repositoryId = (await lab.api('POST', '/api/v1/repositories', { name, kind: 'local', path: join(dir, name), ...settings })).body.repositoryId;
      return (await lab.backup('vm1', 'full')).job.restorePointId as string;
    };
    const points = { chunks: await repository('chunks', { layout: 'chunks', encryption: { keyFile: key } }), qcow2: await repository('qcow2', {}) };
    const restic = join(dir, 'restic');
    const password = { RESTIC_PASSWORD: 'bench' };
    await shell(`restic init -q -r '${restic}' && restic backup -q -r '${restic}' --stdin --stdin-filename disk0.raw < '${disk}'`, password);
    out(`disk: ${diskMib} MiB raw, ext4 with this machine's files (${(Number((await shell(`du -sm --apparent-size '${disk}'`)).stdout.split('\t')[0]))} MiB apparent, data ${Number((await shell(`du -sm '${disk}'`)).stdout.split('\t')[0])} MiB allocated); ${runs} rounds, each restoring it from an encrypted chunks repository, a plain qcow2 repository (sendense restore disk) and restic (dump)`);

    const hub = lab.hub!.child.pid!;
    const env = { SENDENSE_HUB: `http://127.0.0.1:${lab.apiPort}`, SENDENSE_TOKEN: lab.token };
    const target = join(dir, 'restored.raw');
    const cliProfile = process.env.SENDENSE_BENCH_PROFILE ? `--cpu-prof --cpu-prof-dir='${process.env.SENDENSE_BENCH_PROFILE}'` : '';
    const ways: Record<'chunks' | 'qcow2' | 'restic', () => Promise<Cost>> = {
      chunks: () => shell(`node ${cliProfile} '${SENDENSE_BIN}' restore disk '${points.chunks}' --disk disk0 -o '${target}'`, env),
      qcow2: () => shell(`node ${cliProfile} '${SENDENSE_BIN}' restore disk '${points.qcow2}' --disk disk0 -o '${target}'`, env),
      restic: () => shell(`restic dump -q -r '${restic}' latest /disk0.raw > '${target}' && sync '${target}'`, password),
    };
    const results: Record<keyof typeof ways, { wallS: number[]; toolCpuS: number[]; hubCpuS: number[] }> = { chunks: { wallS: [], toolCpuS: [], hubCpuS: [] }, qcow2: { wallS: [], toolCpuS: [], hubCpuS: [] }, restic: { wallS: [], toolCpuS: [], hubCpuS: [] } };
    for (let round = 1; round <= runs; round++) {
      const line: string[] = [];
      for (const way of Object.keys(ways) as (keyof typeof ways)[]) {
        rmSync(target, { force: true });
        await shell('sync');
        const hubBefore = cpuSeconds(hub, true);
        const cost = await ways[way]();
        const hubCpuS = cpuSeconds(hub, true) - hubBefore;
        const same = await shell(`cmp -s '${target}' '${disk}' && echo same || echo differs`);
        if (same.stdout.trim() !== 'same') throw new Error(`the disk restored by ${way} differs from the disk`);
        results[way].wallS.push(cost.wallS);
        results[way].toolCpuS.push(cost.cpuS);
        results[way].hubCpuS.push(hubCpuS);
        line.push(`${way} ${cost.wallS.toFixed(2)} s (CPU: tool ${cost.cpuS.toFixed(2)} s, hub ${hubCpuS.toFixed(2)} s)`);
      }
      out(`  round ${round}: ${line.join('; ')}`);
    }
    const m = (way: keyof typeof ways) => ({ wall: median(results[way].wallS), tool: median(results[way].toolCpuS), hub: median(results[way].hubCpuS) });
    for (const way of Object.keys(ways) as (keyof typeof ways)[]) {
      const r = m(way);
      out(`${way}: median ${r.wall.toFixed(2)} s = ${(diskMib / r.wall).toFixed(0)} MiB/s; CPU tool ${r.tool.toFixed(2)} s, hub ${r.hub.toFixed(2)} s`);
    }
    out(`restore from the encrypted chunks repository / from the qcow2 repository: ${(m('chunks').wall / m('qcow2').wall).toFixed(2)} (goal <= 1.2); / restic dump: ${(m('chunks').wall / m('restic').wall).toFixed(2)} (goal <= 0.5)`);
    out(`load average at end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
