import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { compress } from 'zstd-napi';
import { DCtx } from 'zstd-napi/binding';
import { ChunkLocation } from '../src/repositories/chunks/indexes';
import { ChunkStore } from '../src/repositories/chunks/chunk-store';
import { cpuSeconds, Lab, SENDENSE_BIN } from './backup.bench';
import { median } from './restore-mounter.bench';
import { BLOCK, BlockMap, blockMap, changedBlocks } from './store/blocks';
import { Fleet } from './store/fleet';
import { addCost, allocatedBytes, Cost, inProcess, shell, zeroCost } from './store/measure';
import { Qcow2Candidate } from './store/qcow2-candidates';
import { readBack } from './store/read-back';

/*
 * What a fleet costs to keep (issue 40): one template disk (SENDENSE_BENCH_STORE_TEMPLATE_MIB, default 2048) holding
 * a real ext4 with real files of this machine (SENDENSE_BENCH_STORE_FILES_MIB, default 640, from /usr/share and
 * /usr/lib) and generated logs (SENDENSE_BENCH_STORE_TEXT_MIB, default 200); SENDENSE_BENCH_STORE_VMS (default 10)
 * clones of it, each with 5 % of the disk of its own (half random, half text); SENDENSE_BENCH_STORE_DAYS (default 7)
 * days on which every VM rewrites 2 % of its files in a few places each and appends 2 MiB to a log, and is backed up
 * (a full on day one, incrementals after). Every day's disks are backed up by every candidate layout and by restic
 * (`backup --stdin`, compression auto) and borg (`create --compression zstd,3`), each into an encrypted repository.
 * Printed: bytes on disk, the reduction against the disks' logical bytes, backup wall time and CPU, and the restore
 * of the newest point of one VM into a raw file (fsynced) for each; the product's, today's (a qcow2 repository) and
 * restic's restores, which the goals compare, in SENDENSE_BENCH_STORE_RESTORES rounds (default 3), medians.
 *
 * The candidates are the layouts measured for docs/design/storage.md. The qcow2 ones are written by qemu-img and
 * qemu-nbd as the hub writes points; the chunk store is the product's (src/repositories/chunks), driven from this
 * process on one thread: each changed block is read from the disk and put (hashed, compressed, sealed), each point
 * committed with the whole disk's index, and the restore reads the point through its view as the hub's NBD server
 * does. The product itself is measured beside them: a hub and an agent (real processes) with the fleet's raw disks as
 * the agent's inventory, backing each VM up into an encrypted chunks repository every day (a raw disk tracks no
 * changes, so each backup is a full that reads the whole disk, as restic and borg do, and sends only the blocks that
 * differ from the VM's previous point), and the newest point of one VM downloaded as a raw image through the API.
 * Its CPU is the hub's and the agent's with every process they ran.
 */

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const out = (line: string) => process.stdout.write(`${line}\n`);
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const gib = (bytes: number) => (bytes / GiB).toFixed(2);

interface Row {
  name: string;
  bytes: () => number;
  backup: Cost;
  restore?: Cost;
}

let referenced = 0;

/** A point of the chunk store: the changed blocks put, the rest as the VM's previous point had them. */
async function storeChanged(store: ChunkStore, name: string, image: string, map: BlockMap, changed: number[], indexes: Map<number, (ChunkLocation | null)[]>, vm: number): Promise<void> {
  const blocks = [...(indexes.get(vm) ?? new Array<ChunkLocation | null>(map.digests.length).fill(null))];
  const file = await open(image, 'r');
  try {
    for (const i of changed) {
      if (map.digests[i] === null) {
        blocks[i] = null;
        continue;
      }
      const length = Math.min(BLOCK, map.size - i * BLOCK);
      const data = Buffer.allocUnsafe(length);
      await file.read(data, 0, length, i * BLOCK);
      const digest = Buffer.from(map.digests[i]!, 'hex');
      if (store.has(digest)) referenced++;
      blocks[i] = await store.put(data, digest);
    }
  } finally {
    await file.close();
  }
  await store.commitPoint(name, map.size, blocks);
  indexes.set(vm, blocks);
}

/** One distinct non-zero block in `every` of the fleet's disks as they are now, read from the disks. */
async function distinctBlocks(vms: number, fleet: Fleet, maps: Map<number, BlockMap>, every: number): Promise<Buffer[]> {
  const seen = new Set<string>();
  const out: Buffer[] = [];
  for (let vm = 0; vm < vms; vm++) {
    const file = await open(fleet.image(vm), 'r');
    try {
      for (const [i, digest] of maps.get(vm)!.digests.entries()) {
        if (digest === null || seen.has(digest)) continue;
        if (seen.add(digest).size % every) continue;
        const data = Buffer.allocUnsafe(BLOCK);
        const { bytesRead } = await file.read(data, 0, BLOCK, i * BLOCK);
        out.push(data.subarray(0, bytesRead));
      }
    } finally {
      await file.close();
    }
  }
  return out;
}

export async function runStoreBench(): Promise<void> {
  const options = {
    templateMib: env('SENDENSE_BENCH_STORE_TEMPLATE_MIB', 2048),
    realFilesMib: env('SENDENSE_BENCH_STORE_FILES_MIB', 640),
    textMib: env('SENDENSE_BENCH_STORE_TEXT_MIB', 200),
    vms: env('SENDENSE_BENCH_STORE_VMS', 10),
    ownPercent: 5,
    dailyFilesPercent: 2,
    dailyLogMib: 2,
  };
  const days = env('SENDENSE_BENCH_STORE_DAYS', 7);
  const base = mkdtempSync(join(process.env.SENDENSE_BENCH_DIR ?? '/var/tmp', 'sendense-store-'));
  // the product's embedded PostgreSQL runs as its own user, which must pass through to the hub's data directory
  chmodSync(base, 0o755);
  const dir = (name: string) => {
    const path = join(base, name);
    mkdirSync(path, { recursive: true });
    return path;
  };
  out(`load average at start: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  out(`fleet: template ${options.templateMib} MiB (${options.realFilesMib} MiB of this machine's files, ${options.textMib} MiB of logs), ${options.vms} clones with ${options.ownPercent} % of their own, ${days} days (${options.dailyFilesPercent} % of files rewritten, ${options.dailyLogMib} MiB of log a day); work dir ${base}`);
  let lab: Lab | undefined;
  try {
    const fleet = new Fleet({ ...options, dir: dir('fleet') });
    const built = await inProcess(() => fleet.build());
    out(`fleet built in ${built.cost.wallS.toFixed(1)} s`);

    const password = { RESTIC_PASSWORD: 'bench-store', BORG_PASSPHRASE: 'bench-store', BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' };
    const restic = dir('restic');
    const borg = dir('borg');
    await shell(`restic init --repository-version 2 -q -r '${restic}'`, password);
    await shell(`borg init -e repokey '${borg}'`, password);

    const today = new Qcow2Candidate(dir('qcow2'), false, false);
    const zstdQcow2 = new Qcow2Candidate(dir('qcow2-zstd'), true, false);
    const zstdQcow2CrossVm = new Qcow2Candidate(dir('qcow2-zstd-cross-vm'), true, true);
    const key = randomBytes(32);
    const chunks = await ChunkStore.open(dir('chunks'), { key });
    const chunkDir = chunks.dir;
    const indexes = new Map<number, (ChunkLocation | null)[]>();
    const rows: Row[] = [
      { name: 'today: qcow2 chain per VM, no compression (LUKS adds 2 MiB a file)', bytes: () => today.bytesOnDisk(), backup: zeroCost() },
      { name: 'qcow2 chain per VM, zstd clusters (no encryption possible)', bytes: () => zstdQcow2.bytesOnDisk(), backup: zeroCost() },
      { name: 'qcow2 zstd, a clone\'s full on the first VM\'s (no encryption possible)', bytes: () => zstdQcow2CrossVm.bytesOnDisk(), backup: zeroCost() },
      { name: 'chunk store: 64 KiB chunks by SHA-256, zstd 3, AES-256-GCM', bytes: () => allocatedBytes(chunkDir), backup: zeroCost() },
      { name: 'restic 0.14 (encrypted, compression auto)', bytes: () => allocatedBytes(restic), backup: zeroCost() },
      { name: 'borg 1.2 (repokey, zstd,3)', bytes: () => allocatedBytes(borg), backup: zeroCost() },
    ];
    // the product, as an operator runs it
    const productKey = join(base, 'product.key');
    writeFileSync(productKey, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const inventory = join(base, 'inventory.json');
    writeFileSync(inventory, JSON.stringify({ vms: Array.from({ length: options.vms }, (_, vm) => ({ id: `vm-${vm}`, name: `vm-${vm}`, disks: [{ id: 'disk0', path: fleet.image(vm) }] })) }));
    const productDir = dir('product');
    const product = new Lab(productDir, undefined, { repositorySettings: { layout: 'chunks', encryption: { keyFile: productKey } } });
    lab = product;
    await product.start(['--inventory', inventory]);
    const productCpu = () => cpuSeconds(product.hub!.child.pid!, true) + cpuSeconds(product.agent!.child.pid!, true);
    let productSent = 0;
    rows.splice(4, 0, { name: 'Sendense: hub + agent, encrypted chunks repository (the product)', bytes: () => allocatedBytes(join(productDir, 'repo')), backup: zeroCost() });
    const [todayRow, zstdRow, crossRow, chunkRow, productRow, resticRow, borgRow] = rows;
    const maps = new Map<number, BlockMap>();
    let logical = 0;
    let changedTotal = 0;
    let cloneFullSent: number | null = null;
    for (let day = 1; day <= days; day++) {
      for (let vm = 0; vm < options.vms; vm++) {
        if (day > 1) await fleet.day(vm, day);
        const image = fleet.image(vm);
        // every candidate is given the changed blocks: what the agent's change tracking reports
        const map = await blockMap(image);
        const previous = maps.get(vm) ?? null;
        const changed = changedBlocks(previous, map);
        changedTotal += changed.length;
        logical += map.size;
        // what a source-side deduplicating agent sends for a clone's full, told the digests of the first VM's full
        if (day === 1 && vm === 1) {
          const known = new Set(maps.get(0)!.digests);
          cloneFullSent = changed.filter((i) => !known.has(map.digests[i])).length * 64 * 1024;
        }
        todayRow.backup = addCost(todayRow.backup, await today.point(vm, day, image, map, changed));
        zstdRow.backup = addCost(zstdRow.backup, await zstdQcow2.point(vm, day, image, map, changed));
        crossRow.backup = addCost(crossRow.backup, await zstdQcow2CrossVm.point(vm, day, image, map, changed));
        const stored = await inProcess(() => storeChanged(chunks, `vm-${vm}/d${day}/disk0`, image, map, changed, indexes, vm));
        chunkRow.backup = addCost(chunkRow.backup, stored.cost);
        const cpuBefore = productCpu();
        const backedUp = await product.backup(`vm-${vm}`, 'full');
        productRow.backup = addCost(productRow.backup, { wallS: backedUp.ms / 1000, cpuS: productCpu() - cpuBefore });
        productSent += backedUp.story.filter((e) => e.type === 'DiskTransferCompleted').reduce((n, e) => n + Number(e.data.bytesWritten), 0);
        resticRow.backup = addCost(resticRow.backup, await shell(`restic backup -q -r '${restic}' --host bench --tag vm-${vm} --stdin --stdin-filename vm-${vm}.raw < '${image}'`, password));
        borgRow.backup = addCost(borgRow.backup, await shell(`borg create --compression zstd,3 --stdin-name vm-${vm}.raw '${borg}::vm-${vm}-d${day}' - < '${image}'`, password));
        maps.set(vm, map);
      }
      out(`  day ${day} (load ${loadavg()[0].toFixed(2)}): ${rows.map((r) => `${r.name.split(':')[0].split(' (')[0]} ${gib(r.bytes())} GiB`).join(', ')}`);
    }

    const restoreDir = dir('restored');
    const newest = `vm-0-d${days}`;
    todayRow.restore = await today.restore(0, join(restoreDir, 'today.raw'));
    // every other restore must equal today's; each goes once compared, or the restored disks alone fill the bench's disk
    const compared = async (name: string) => {
      const differs = await shell(`cmp -s '${restoreDir}/today.raw' '${restoreDir}/${name}' || echo differs`);
      if (differs.stdout.trim()) throw new Error(`the restore into ${name} differs from the disk`);
      rmSync(join(restoreDir, name), { force: true });
    };
    zstdRow.restore = await zstdQcow2.restore(0, join(restoreDir, 'zstd.raw'));
    await compared('zstd.raw');
    crossRow.restore = await zstdQcow2CrossVm.restore(0, join(restoreDir, 'cross.raw'));
    await compared('cross.raw');
    chunkRow.restore = (await inProcess(() => readBack(chunks, `vm-0/d${days}/disk0`, join(restoreDir, 'chunks.raw')))).cost;
    await compared('chunks.raw');
    /**
     * A point's disk restored into `file` as an operator restores it, by `sendense restore disk` (raw, sparse, fsynced
     * before it is renamed into place): its wall time, and the CPU of the hub, the agent and the CLI.
     */
    const download = async (restorePointId: string, file: string): Promise<Cost> => {
      const cpu = productCpu();
      const cli = await shell(`node '${SENDENSE_BIN}' restore disk '${restorePointId}' --disk disk0 -o '${file}'`, { SENDENSE_HUB: `http://127.0.0.1:${product.apiPort}`, SENDENSE_TOKEN: product.token });
      return { wallS: cli.wallS, cpuS: productCpu() - cpu + cli.cpuS };
    };
    const newestProduct = ((await product.api('GET', `/api/v1/vms/vm-0/restore-points?repositoryId=${product.repositoryId}`)).body as { restorePointId: string }[]).at(-1)!.restorePointId;
    // today's product: the same disk backed up into a plain qcow2 repository of the same hub, and downloaded the same way
    const chunksRepositoryId = product.repositoryId;
    product.repositoryId = (await product.api('POST', '/api/v1/repositories', { name: 'today', kind: 'local', path: dir('product-qcow2') })).body.repositoryId;
    const todayPoint = (await product.backup('vm-0', 'full')).job.restorePointId as string;
    product.repositoryId = chunksRepositoryId;
    // the three restores the goals compare, in turn for SENDENSE_BENCH_STORE_RESTORES rounds (one alone moved by a
    // third between runs), each output removed and the page cache written back first; medians
    const ways = {
      product: () => download(newestProduct, join(restoreDir, 'product.raw')),
      qcow2: () => download(todayPoint, join(restoreDir, 'product-qcow2.raw')),
      restic: () => shell(`restic dump -q -r '${restic}' --tag vm-0 latest /vm-0.raw > '${restoreDir}/restic.raw' && sync '${restoreDir}/restic.raw'`, password),
    };
    const restores: Record<keyof typeof ways, Cost[]> = { product: [], qcow2: [], restic: [] };
    for (let round = 1; round <= env('SENDENSE_BENCH_STORE_RESTORES', 3); round++) {
      for (const way of Object.keys(ways) as (keyof typeof ways)[]) {
        await shell('sync');
        restores[way].push(await ways[way]());
        await compared(way === 'qcow2' ? 'product-qcow2.raw' : `${way}.raw`);
      }
      out(`  restore round ${round}: ${Object.entries(restores).map(([way, costs]) => `${way} ${costs.at(-1)!.wallS.toFixed(2)} s (CPU ${costs.at(-1)!.cpuS.toFixed(2)} s)`).join(', ')}`);
    }
    const medianCost = (costs: Cost[]): Cost => ({ wallS: median(costs.map((c) => c.wallS)), cpuS: median(costs.map((c) => c.cpuS)) });
    productRow.restore = medianCost(restores.product);
    const todayProductRestore = medianCost(restores.qcow2);
    resticRow.restore = medianCost(restores.restic);
    borgRow.restore = await shell(`borg extract --stdout '${borg}::${newest}' > '${restoreDir}/borg.raw' && sync '${restoreDir}/borg.raw'`, password);
    await compared('borg.raw');

    const resticBytes = resticRow.bytes();
    const borgBytes = borgRow.bytes();
    out('');
    out(`logical bytes backed up: ${gib(logical)} GiB in ${options.vms * days} points; changed 64 KiB blocks after the fulls: ${gib(changedTotal * 64 * 1024)} GiB`);
    out(`| layout | GiB stored | reduction | vs restic | vs borg | backup wall s | backup CPU s | restore newest, wall s | restore CPU s |`);
    out('|---|---|---|---|---|---|---|---|---|');
    for (const row of rows) {
      const bytes = row.bytes();
      out(`| ${row.name} | ${gib(bytes)} | ${(logical / bytes).toFixed(1)}× | ${(bytes / resticBytes).toFixed(2)} | ${(bytes / borgBytes).toFixed(2)} | ${row.backup.wallS.toFixed(1)} | ${row.backup.cpuS.toFixed(1)} | ${row.restore!.wallS.toFixed(2)} | ${row.restore!.cpuS.toFixed(2)} |`);
    }
    out(`chunk store: ${chunks.stats.chunks} chunks stored (${gib(chunks.stats.plainBytes)} GiB before compression, ${gib(chunks.stats.storedBytes)} GiB after), ${referenced} changed blocks it already held`);
    if (cloneFullSent !== null) out(`a clone's full with source-side deduplication against the first VM's full: ${(cloneFullSent / MiB).toFixed(0)} MiB sent of ${options.templateMib} MiB`);
    out(`the product: ${gib(productSent)} GiB sent by the agent over ${options.vms * days} backups of ${gib(logical)} GiB of disks; backup wall and CPU / restic's: ${(productRow.backup.wallS / resticRow.backup.wallS).toFixed(2)}, ${(productRow.backup.cpuS / resticRow.backup.cpuS).toFixed(2)}; restore of the newest point (sendense restore disk, median ${productRow.restore!.wallS.toFixed(2)} s) / the same disk restored the same way from a plain qcow2 repository of the same hub (${todayProductRestore.wallS.toFixed(2)} s): ${(productRow.restore!.wallS / todayProductRestore.wallS).toFixed(2)}, / restic's: ${(productRow.restore!.wallS / resticRow.restore!.wallS).toFixed(2)}; stored / restic's ${(productRow.bytes() / resticBytes).toFixed(2)}, / borg's ${(productRow.bytes() / borgBytes).toFixed(2)} (goals: <= 1.0, <= 1.0; <= 1.2, <= 0.5; <= 0.9, <= 0.9)`);

    // the codecs on the same blocks: one distinct block in 4 of the last day's disks
    const sample = await distinctBlocks(options.vms, fleet, maps, 4);
    const raw = sample.reduce((s, b) => s + b.length, 0);
    // each zstd level's stored share, compression CPU, and the CPU a restore spends decompressing what it stored
    // (a block zstd would not shrink is stored raw and copied): what the restore's goal against qcow2 costs in bytes
    const codecs: [string, (b: Buffer) => Buffer, ((b: Buffer, into: Buffer) => number) | null][] = [
      ...[3, 1, -1, -5, -10, 9].map((level): [string, (b: Buffer) => Buffer, (b: Buffer, into: Buffer) => number] => [`zstd ${level}`, (b) => compress(b, { compressionLevel: level }), (b, into) => decompressor.decompress(into, b)]),
      ['deflate 6 (node:zlib)', (b) => deflateSync(b), null],
    ];
    const decompressor = new DCtx();
    const into = Buffer.alloc(BLOCK);
    for (const [name, codec, decode] of codecs) {
      const measured = await inProcess(async () => sample.map((b) => codec(b)));
      const stored = measured.value.reduce((s, c, i) => s + Math.min(sample[i].length, c.length), 0);
      // the least CPU of 3 passes: one pass is a tenth of a second, where a cold start or a neighbour shows
      let openedCpuS = Infinity;
      for (let pass = 0; decode && pass < 3; pass++) {
        const opened = await inProcess(async () => measured.value.forEach((c, i) => (c.length < sample[i].length ? decode(c, into) : sample[i].copy(into))));
        openedCpuS = Math.min(openedCpuS, opened.cost.cpuS);
      }
      out(`codec ${name}: ${(stored / raw).toFixed(3)} of the bytes, ${(raw / MiB / measured.cost.cpuS).toFixed(0)} MiB/s of CPU${decode ? `, opened at ${(raw / MiB / openedCpuS).toFixed(0)} MiB/s of CPU (least of 3 passes)` : ''} (${sample.length} chunks)`);
    }
    out(`load average at end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    await lab?.close();
    if (!process.env.SENDENSE_BENCH_KEEP) rmSync(base, { recursive: true, force: true });
  }
}
