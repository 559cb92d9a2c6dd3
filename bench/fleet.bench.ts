import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { cpuSeconds, Lab, postgresCpu, postgresPids, statusKiB } from './backup.bench';
import { median } from './stats';

/*
 * A fleet on one hub: SENDENSE_BENCH_FLEET_VMS powered-off VMs (default 100; one 64 MiB qcow2 disk each with
 * 4 MiB of random data in eight places), all selected by one policy that is run at once, then run again after
 * a small write to every VM (a round of incrementals). Measured: wall time to the last job's end, backups per
 * minute, hub RSS peak and CPU, PostgreSQL RSS peak and CPU, events and event store bytes per backup, and the
 * latency of GET /api/v1/backups and of the protection report while the fleet runs. First one hub with its
 * embedded PostgreSQL and one agent; then, on one external PostgreSQL (DATABASE_URL, else the machine's
 * 127.0.0.1:5432), one hub and one agent, and two hubs with an agent each holding half the fleet, the policy run
 * once for all: whether a second hub adds capacity is told on the same server.
 * SENDENSE_MAX_CONCURRENT_BACKUPS (default 4) applies to every hub. SENDENSE_BENCH_FLEET_ROUNDS (default 2) sets
 * the one hub's rounds (a full, then incrementals). SENDENSE_BENCH_PROFILE=DIR runs the one hub and its agent with
 * node --cpu-prof into DIR.
 */

const run = promisify(execFile);
const MiB = 1024 * 1024;
const out = (line: string) => process.stdout.write(`${line}\n`);
const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];

interface Vm {
  id: string;
  name: string;
  disks: { id: string; path: string }[];
}

async function makeVms(dir: string, count: number): Promise<Vm[]> {
  const vms: Vm[] = [];
  for (let i = 0; i < count; i++) {
    const name = `fleet-${String(i).padStart(3, '0')}`;
    const path = join(dir, `${name}.qcow2`);
    const random = join(dir, `${name}.rand`);
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', path, '64M']);
    await run('sh', ['-c', `head -c 4M /dev/urandom > '${random}'`]);
    const writes = Array.from({ length: 8 }, (_, k) => ['-c', `write -s ${random} ${k * 8}M 512K`]).flat();
    await run('qemu-io', ['-f', 'qcow2', ...writes, path]);
    rmSync(random);
    vms.push({ id: name, name, disks: [{ id: 'disk0', path }] });
  }
  return vms;
}

/** 1 MiB written to every VM's disk: what the round of incrementals copies. */
async function touch(vms: Vm[], round: number): Promise<void> {
  for (const vm of vms) await run('qemu-io', ['-f', 'qcow2', '-c', `write -P ${round} 40M 1M`, vm.disks[0].path]);
}

/** Proportional set size: memory shared between processes (PostgreSQL's shared buffers) counted once across them. */
function pssKiB(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** The machine's PostgreSQL server processes serving `database` (their command line names it), for an external server. */
function backendsOf(database: string): number[] {
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e)).map(Number).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(` ${database} `);
    } catch {
      return false;
    }
  });
}

interface Database {
  /** PostgreSQL processes whose RSS and CPU count: the hub's embedded server, or the backends of the bench's database. */
  pids: () => number[];
  cpu: () => number;
  query: <T>(sql: string) => Promise<T[]>;
  close: () => Promise<void>;
}

async function embeddedDatabase(dataDir: string, hubPid: number): Promise<Database> {
  const client = new Client({ host: join(dataDir, 'postgres'), port: 5432, user: 'postgres', database: 'postgres', password: readFileSync(join(dataDir, 'postgres.password'), 'utf8').trim() });
  client.on('error', () => undefined); // the server stops with its hub
  await client.connect();
  return { pids: () => postgresPids(hubPid), cpu: () => postgresCpu(hubPid), query: async (sql) => (await client.query(sql)).rows, close: () => client.end() };
}

async function externalDatabase(url: string, database: string): Promise<Database> {
  const client = new Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  const pids = () => backendsOf(database);
  const cpu = () => pids().reduce((n, pid) => n + (() => {
    try {
      return cpuSeconds(pid);
    } catch {
      return 0;
    }
  })(), 0);
  return { pids, cpu, query: async (sql) => (await client.query(sql)).rows, close: () => client.end() };
}

interface RoundResult {
  wallMs: number;
  /** Of all the machine's cores, from /proc/stat: near 1, a second hub on the same machine has no CPU to add. */
  machineBusy: number;
  jobs: number;
  maxRunning: number;
  hubRssMiB: number[];
  /** At the round's end: a peak that grows round after round is a leak, one that stays is a working set. */
  hubRssNowMiB: number[];
  pgRssMiB: number;
  hubCpu: number[];
  /** The hub's qemu-nbd and qemu-img that ended during the round (the kernel adds them to the hub once reaped). */
  hubChildrenCpu: number[];
  /** The agent with its reaped children (its qemu-nbd exports). */
  agentCpu: number[];
  pgCpu: number;
  latency: { backups: number[]; report: number[] };
  /** The hub's event-loop delay over the round (p99, max; ms), from its /metrics: how long a request may wait for the loop alone. */
  loopDelay: { p99: number; max: number }[];
}

/** The hub's event-loop delay since its last scrape (prom-client resets the histogram at every scrape), in ms. */
async function loopDelay(lab: Lab): Promise<{ p99: number; max: number }> {
  const res = await fetch(`http://127.0.0.1:${lab.apiPort}/metrics`, { headers: { Authorization: `Bearer ${lab.token}` } });
  const text = await res.text();
  if (!res.ok) throw new Error(`GET /metrics: ${res.status} ${text.slice(0, 200)}`);
  const value = (name: string) => {
    const m = new RegExp(`^sendense_nodejs_eventloop_lag_${name}_seconds (\\S+)$`, 'm').exec(text);
    if (!m) throw new Error(`the hub's /metrics has no sendense_nodejs_eventloop_lag_${name}_seconds`);
    return Number(m[1]) * 1000;
  };
  return { p99: value('p99'), max: value('max') };
}

/** Runs the policy and waits for every job it requested, sampling memory and the API meanwhile. */
async function round(labs: Lab[], db: Database, policyId: string, expected: number, limit: number): Promise<RoundResult> {
  const api = labs[0];
  const hubPids = labs.map((l) => l.hub!.child.pid!);
  const agentPids = labs.map((l) => l.agent!.child.pid!);
  const cpu0 = hubPids.map((p) => cpuSeconds(p));
  const reaped0 = hubPids.map((p) => cpuSeconds(p, true) - cpuSeconds(p));
  const agent0 = agentPids.map((p) => cpuSeconds(p, true));
  for (const lab of labs) await loopDelay(lab);
  const pg0 = db.cpu();
  const machine0 = machineTicks();
  let pgPeak = 0;
  let done = false;
  const latency = { backups: [] as number[], report: [] as number[] };
  const sampler = (async () => {
    for (let i = 0; !done; i++) {
      pgPeak = Math.max(pgPeak, db.pids().reduce((n, pid) => n + pssKiB(pid), 0));
      // the two reads an operator's console makes, alternately, from every hub
      const lab = labs[i % labs.length];
      const t = performance.now();
      const path = i % 2 === 0 ? '/api/v1/backups' : '/api/v1/reports/protection';
      const res = await lab.api('GET', path);
      if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`);
      (i % 2 === 0 ? latency.backups : latency.report).push(performance.now() - t);
      await sleep(50);
    }
  })();
  const started = Date.now();
  const res = await api.api('POST', `/api/v1/policies/${policyId}/run`);
  if (res.status !== 202) throw new Error(`policy run refused: ${res.status} ${JSON.stringify(res.body)}`);
  const jobIds = (res.body.jobs as { jobId: string; status: string; reason: string | null }[]).filter((j) => j.status === 'requested').map((j) => j.jobId);
  if (jobIds.length !== expected) throw new Error(`the policy requested ${jobIds.length} backups, not ${expected}: ${JSON.stringify(res.body.jobs.filter((j: { status: string }) => j.status !== 'requested').slice(0, 3))}`);
  const wanted = new Set(jobIds);
  let jobs: { jobId: string; status: string; startedAt: string | null; finishedAt: string | null; error: string | null }[] = [];
  for (;;) {
    jobs = [];
    for (let cursor: string | undefined; ; ) {
      const page = (await api.api('GET', `/api/v1/backups?limit=500${cursor ? `&cursor=${cursor}` : ''}`)).body;
      jobs.push(...page.jobs.filter((j: { jobId: string }) => wanted.has(j.jobId)));
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    if (jobs.length === expected && jobs.every((j) => j.status === 'completed' || j.status === 'failed')) break;
    if (Date.now() - started > 3_600_000) throw new Error('the fleet did not finish within an hour');
    await sleep(500);
  }
  const wallMs = Math.max(...jobs.map((j) => Date.parse(j.finishedAt!))) - started;
  const machine1 = machineTicks();
  done = true;
  await sampler;
  const delays = [];
  for (const lab of labs) delays.push(await loopDelay(lab));
  const failed = jobs.filter((j) => j.status !== 'completed');
  if (failed.length) throw new Error(`${failed.length} backups failed, e.g. ${failed[0].error}`);
  // the most jobs running at once, from their own start and end times
  const marks = jobs.flatMap((j) => [[Date.parse(j.startedAt!), 1], [Date.parse(j.finishedAt!), -1]] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let running = 0;
  let maxRunning = 0;
  for (const [, d] of marks) maxRunning = Math.max(maxRunning, (running += d));
  if (maxRunning > limit) throw new Error(`${maxRunning} backups ran at once: the limit is ${limit}`);
  return {
    wallMs,
    machineBusy: (machine1.busy - machine0.busy) / (machine1.total - machine0.total),
    jobs: jobs.length,
    maxRunning,
    hubRssMiB: hubPids.map((p) => statusKiB(p, 'VmHWM') / 1024),
    hubRssNowMiB: hubPids.map((p) => statusKiB(p, 'VmRSS') / 1024),
    pgRssMiB: pgPeak / 1024,
    hubCpu: hubPids.map((p, i) => cpuSeconds(p) - cpu0[i]),
    hubChildrenCpu: hubPids.map((p, i) => cpuSeconds(p, true) - cpuSeconds(p) - reaped0[i]),
    agentCpu: agentPids.map((p, i) => cpuSeconds(p, true) - agent0[i]),
    pgCpu: db.cpu() - pg0,
    latency,
    loopDelay: delays,
  };
}

/** All cores' ticks since boot from /proc/stat's first line; idle and iowait are the idle ones. */
function machineTicks(): { busy: number; total: number } {
  const ticks = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  return { busy: total - ticks[3] - ticks[4], total };
}

async function report(label: string, r: RoundResult, db: Database, backupsSoFar: number): Promise<void> {
  const [{ events, bytes }] = await db.query<{ events: string; bytes: string }>(`SELECT count(*)::text AS events, pg_total_relation_size('es_events')::text AS bytes FROM es_events`);
  const fmt = (xs: number[]) => `p50 ${median(xs).toFixed(0)} ms, p99 ${pct(xs, 99).toFixed(0)} ms (${xs.length} requests)`;
  out(`  ${label}: ${r.jobs} backups in ${(r.wallMs / 1000).toFixed(1)} s = ${(r.jobs / (r.wallMs / 60_000)).toFixed(0)} backups/min; at most ${r.maxRunning} at once; the machine's ${cpus().length} cores ${(r.machineBusy * 100).toFixed(0)}% busy`);
  const seconds = (xs: number[]) => xs.map((c) => `${c.toFixed(1)} s`).join(' and ');
  out(`    hub RSS peak ${r.hubRssMiB.map((m) => `${m.toFixed(0)} MiB`).join(' and ')} (goal < 300), ${r.hubRssNowMiB.map((m) => `${m.toFixed(0)} MiB`).join(' and ')} at the end; CPU ${seconds(r.hubCpu)} (its qemu-nbd and qemu-img ${seconds(r.hubChildrenCpu)}); agent CPU with its qemu-nbd ${seconds(r.agentCpu)}; PostgreSQL memory peak ${r.pgRssMiB.toFixed(0)} MiB (PSS of its processes), CPU ${r.pgCpu.toFixed(1)} s`);
  out(`    GET /api/v1/backups ${fmt(r.latency.backups)}; GET /api/v1/reports/protection ${fmt(r.latency.report)} (goal p99 < 100 ms); hub event-loop delay p99 ${r.loopDelay.map((d) => `${d.p99.toFixed(0)} ms`).join(' and ')}, max ${r.loopDelay.map((d) => `${d.max.toFixed(0)} ms`).join(' and ')}`);
  out(`    event store: ${events} events, ${(Number(bytes) / MiB).toFixed(1)} MiB = ${(Number(events) / backupsSoFar).toFixed(1)} events and ${(Number(bytes) / 1024 / backupsSoFar).toFixed(1)} KiB per backup so far`);
}

export async function runFleetBench(): Promise<void> {
  const count = Number(process.env.SENDENSE_BENCH_FLEET_VMS ?? 100);
  const limit = Number(process.env.SENDENSE_MAX_CONCURRENT_BACKUPS ?? 4);
  const rounds = Math.max(2, Number(process.env.SENDENSE_BENCH_FLEET_ROUNDS ?? 2));
  const dir = mkdtempSync(join(process.env.SENDENSE_BENCH_DIR ?? tmpdir(), 'sendense-fleet-bench-'));
  chmodSync(dir, 0o755);
  const labs: Lab[] = [];
  const dbs: Database[] = [];
  const external = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const databasePrefix = `sendense_fleet_${process.pid}`;
  const databases: string[] = [];
  let admin: Client | undefined;
  try {
    out(`load average at start: ${load()}`);
    const vmDir = join(dir, 'vms');
    mkdirSync(vmDir);
    let t = Date.now();
    const vms = await makeVms(vmDir, count);
    out(`${count} VMs (one 64 MiB qcow2 disk each, 4 MiB of random data) made in ${((Date.now() - t) / 1000).toFixed(1)} s; at most ${limit} backups at once per hub`);
    const policy = (repositoryId: string) => ({ name: 'fleet', vms: { namePattern: 'fleet-*' }, repositoryId, schedule: { cron: '0 3 1 1 *', timezone: 'UTC' }, retention: { keepLast: 10 }, rpoHours: 24 });

    // one hub, its embedded PostgreSQL, one agent with the whole fleet
    const inventory = join(dir, 'inventory-all.json');
    writeFileSync(inventory, JSON.stringify({ vms }));
    const one = new Lab(join(dir, 'one'), process.env.SENDENSE_BENCH_PROFILE, { hubEnv: { SENDENSE_MAX_CONCURRENT_BACKUPS: String(limit) } });
    mkdirSync(join(dir, 'one'));
    labs.push(one);
    await one.start(['--inventory', inventory]);
    await one.until(async () => (await one.api('GET', '/api/v1/vms')).body.length === count, 120_000, 'the fleet to be reported');
    const db = await embeddedDatabase(join(dir, 'one', 'hub'), one.hub!.child.pid!);
    dbs.push(db);
    const created = await one.api('POST', '/api/v1/policies', policy(one.repositoryId));
    if (created.status !== 201) throw new Error(`policy refused: ${JSON.stringify(created.body)}`);
    out('one hub (embedded PostgreSQL), one agent:');
    const oneHub = [await round([one], db, created.body.policyId, count, limit)];
    await report('fulls', oneHub[0], db, count);
    // more rounds of incrementals (SENDENSE_BENCH_FLEET_ROUNDS) show whether the hub's memory keeps growing
    for (let r = 1; r < rounds; r++) {
      await touch(vms, r);
      oneHub.push(await round([one], db, created.body.policyId, count, limit));
      await report(rounds > 2 ? `incrementals (round ${r + 1})` : 'incrementals', oneHub[r], db, (r + 1) * count);
    }
    await db.close();
    dbs.length = 0;
    await one.close();
    labs.length = 0;

    // On the machine's PostgreSQL (TCP, its own settings): one hub, then two hubs with an agent each holding half
    // the fleet. The embedded server's figures above are the default's; the scale-out is told on one server.
    admin = new Client({ connectionString: external });
    await admin.connect();
    const onServer: RoundResult[][] = [];
    for (const hubs of [1, 2]) {
      const database = `${databasePrefix}_${hubs}`;
      databases.push(database);
      await admin.query(`CREATE DATABASE ${database}`);
      const url = new URL(external);
      url.pathname = `/${database}`;
      const shared = { DATABASE_URL: url.toString(), SENDENSE_MAX_CONCURRENT_BACKUPS: String(limit) };
      const parts = hubs === 1 ? [vms] : [vms.slice(0, count / 2), vms.slice(count / 2)];
      for (const [i, part] of parts.entries()) {
        const file = join(dir, `inventory-${hubs}-${i}.json`);
        writeFileSync(file, JSON.stringify({ vms: part }));
        mkdirSync(join(dir, `server-${hubs}-${i}`));
        const lab = new Lab(join(dir, `server-${hubs}-${i}`), undefined, { hubEnv: { ...shared, SENDENSE_NBD_PORTS: i === 0 ? '14100-14163' : '14200-14263' }, agentName: `fleet-agent-${i}`, repositoryId: labs[0]?.repositoryId });
        labs.push(lab);
        await lab.start(['--inventory', file]);
      }
      await labs[0].until(async () => (await labs[0].api('GET', '/api/v1/vms')).body.filter((v: { agentConnected: boolean }) => v.agentConnected).length === count, 120_000, 'the fleet to be reported');
      const serverDb = await externalDatabase(url.toString(), database);
      dbs.push(serverDb);
      const created = await labs[0].api('POST', '/api/v1/policies', policy(labs[0].repositoryId));
      if (created.status !== 201) throw new Error(`policy refused: ${JSON.stringify(created.body)}`);
      out(hubs === 1 ? `one hub on the machine's PostgreSQL (${url.host}), one agent:` : `two hubs on the machine's PostgreSQL (${url.host}), an agent with half the fleet on each:`);
      // a new chain per VM in the new repository: fulls, then incrementals after the same kind of write
      const results = [await round(labs, serverDb, created.body.policyId, count, hubs * limit)];
      await report('fulls', results[0], serverDb, count);
      await touch(vms, rounds + hubs);
      results.push(await round(labs, serverDb, created.body.policyId, count, hubs * limit));
      await report('incrementals', results[1], serverDb, 2 * count);
      onServer.push(results);
      await serverDb.close();
      dbs.length = 0;
      for (const lab of labs.splice(0)) await lab.close();
    }
    const ratio = (a: RoundResult[], b: RoundResult[]) => `fulls ${(a[0].wallMs / b[0].wallMs).toFixed(2)}, incrementals ${(a[1].wallMs / b[1].wallMs).toFixed(2)}`;
    out(`two hubs / one hub on the same PostgreSQL, wall time: ${ratio(onServer[1], onServer[0])} (goal < 1)`);
    out(`two hubs / one hub on its embedded PostgreSQL, wall time: ${ratio(onServer[1], oneHub)} (the first round of each)`);
    out(`load average at end: ${load()}`);
  } finally {
    for (const lab of labs) await lab.close();
    for (const db of dbs) await db.close().catch(() => undefined);
    if (admin) {
      for (const database of databases) await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`).catch(() => undefined);
      await admin.end();
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
