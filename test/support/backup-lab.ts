import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { AuditEvent } from '../../src/audit/audit-event';
import { buildSampleVm, SampleVm } from '../fixtures/vm/sample-vm';
import { freePort, processesMentioning, spawnSendense, SpawnedCli, waitForHttp } from './processes';
import { connectionUrl, createTestDatabase, TestDatabase } from './test-database';

const run = promisify(execFile);
export const LAB_TOKEN = 'lab-admin-token-0123456789';

/**
 * The NBD ports of a lab's hub: one range per test lane (jest.config.js), so that labs of the two lanes, which run
 * at the same time, never take the same port; within a lane files run one at a time.
 */
export const LAB_NBD_PORTS = process.env.SENDENSE_TEST_LANE === 'units' ? { first: 15000, last: 15031 } : { first: 14000, last: 14031 };

/** A real hub process, a real agent process, real SSH over loopback, a real VM's disks. */
export class BackupLab {
  db!: TestDatabase;
  dir!: string;
  vm!: SampleVm;
  repositoryId!: string;
  hub?: SpawnedCli;
  agent?: SpawnedCli;
  apiPort = 0;
  sshPort = 0;

  get hubDataDir(): string {
    return join(this.dir, 'hub');
  }

  get repoRoot(): string {
    return join(this.dir, 'repo');
  }

  constructor(
    private readonly hubEnv: NodeJS.ProcessEnv = {},
    private readonly extraAgentEnv: NodeJS.ProcessEnv = {},
    /** Settings the lab's repository is registered with (maxChainDepth, immutableDays...). */
    private readonly repositorySettings: Record<string, unknown> = {},
  ) {}

  /** A hub and its repository, no VM and no agent: the second hub of a sync. */
  async startHubOnly(): Promise<void> {
    await this.prepare();
    await this.startHub();
    this.repositoryId = (await this.api('POST', '/api/v1/repositories', { name: 'lab', kind: 'local', path: this.repoRoot, ...this.repositorySettings })).body.repositoryId;
  }

  protected async prepare(): Promise<void> {
    this.db = await createTestDatabase();
    this.dir = mkdtempSync(join(tmpdir(), 'sendense-lab-'));
    chmodSync(this.dir, 0o755);
    mkdirSync(this.repoRoot);
    this.apiPort = await freePort();
    this.sshPort = await freePort();
  }

  async start(vmSizes?: [number, number], fill?: [number, number], secondVm = false): Promise<void> {
    await this.prepare();
    this.vm = await buildSampleVm(join(this.dir, 'vm'), 'vm1', vmSizes, fill).catch(async (e) => {
      mkdirSync(join(this.dir, 'vm'), { recursive: true });
      throw e;
    });
    if (secondVm) {
      const other = await buildSampleVm(join(this.dir, 'vm2'), 'vm2');
      const merge = (file: string) => JSON.parse(readFileSync(file, 'utf8')).vms;
      writeFileSync(this.vm.inventoryFile, JSON.stringify({ vms: [...merge(this.vm.inventoryFile), ...merge(other.inventoryFile)] }));
    }
    await this.startHub();
    this.repositoryId = (await this.api('POST', '/api/v1/repositories', { name: 'lab', kind: 'local', path: this.repoRoot, ...this.repositorySettings })).body.repositoryId;
    const registered = spawnSendense(['agent', 'register', '--hub', `http://127.0.0.1:${this.apiPort}`, '--name', 'lab-agent'], this.agentEnv());
    if ((await registered.exited).code !== 0) throw new Error(`agent register failed: ${registered.output()}`);
    await this.startAgent();
  }

  agentEnv(): NodeJS.ProcessEnv {
    return { SENDENSE_TOKEN: LAB_TOKEN, SENDENSE_AGENT_DIR: join(this.dir, 'agent'), SENDENSE_LOG_LEVEL: 'warn', ...this.extraAgentEnv };
  }

  /** What the lab's hub process is started with. */
  protected hubEnvironment(): NodeJS.ProcessEnv {
    return {
      DATABASE_URL: connectionUrl(this.db.connection),
      SENDENSE_DATA_DIR: this.hubDataDir,
      SENDENSE_API_PORT: String(this.apiPort),
      SENDENSE_SSH_PORT: String(this.sshPort),
      SENDENSE_SSH_BIND: '127.0.0.1',
      SENDENSE_ADMIN_TOKEN: LAB_TOKEN,
      SENDENSE_NBD_PORTS: `${LAB_NBD_PORTS.first}-${LAB_NBD_PORTS.last}`,
      SENDENSE_LOG_LEVEL: 'warn',
      ...this.hubEnv,
    };
  }

  /**
   * A hub started again after a SIGKILL first shuts down the PostgreSQL its predecessor left running, then waits for
   * its crash recovery (it allows 30 s and 120 s for those, src/database/embedded-postgres.ts). Under a full test
   * run's load, such a hub once did not answer within 30 s, and its output (warnings only) did not say which step
   * took the time. A hub that exits fails the wait at once.
   */
  async startHub(): Promise<void> {
    this.hub = spawnSendense(['hub'], this.hubEnvironment());
    await waitForHttp(`http://127.0.0.1:${this.apiPort}/api/v1/health`, 120_000, this.hub).catch((e: Error) => {
      throw new Error(`${e.message}\nhub output:\n${this.hub?.output().slice(-4000)}`);
    });
  }

  async startAgent(): Promise<void> {
    this.agent = spawnSendense(['agent', 'run', '--inventory', this.vm.inventoryFile], this.agentEnv());
    await this.until(async () => {
      const vms = (await this.api('GET', '/api/v1/vms')).body;
      return Array.isArray(vms) && vms.some((v: { vmId: string; agentConnected: boolean }) => v.vmId === 'vm1' && v.agentConnected);
    }, 30_000, 'the agent to connect and report vm1');
  }

  api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
    return this.apiAt(`http://127.0.0.1:${this.apiPort}`, method, path, body, headers);
  }

  /**
   * Another hub process on this lab's database, with its data dir `hub-b` in the lab's: the second hub of the tests
   * of several. `env` names its NBD port range, one of the test file's own (test/lanes.spec.ts), and may set more.
   */
  async startSecondHub(apiPort: number, env: NodeJS.ProcessEnv & { SENDENSE_NBD_PORTS: string }, sshPort?: number): Promise<SpawnedCli> {
    const dataDir = join(this.dir, 'hub-b');
    mkdirSync(dataDir, { recursive: true });
    const hub = spawnSendense(['hub'], {
      DATABASE_URL: connectionUrl(this.db.connection),
      SENDENSE_DATA_DIR: dataDir,
      SENDENSE_API_PORT: String(apiPort),
      SENDENSE_SSH_PORT: String(sshPort ?? (await freePort())),
      SENDENSE_SSH_BIND: '127.0.0.1',
      SENDENSE_ADMIN_TOKEN: LAB_TOKEN,
      SENDENSE_LOG_LEVEL: 'warn',
      ...env,
    });
    await waitForHttp(`http://127.0.0.1:${apiPort}/api/v1/health`);
    return hub;
  }

  /** The same call to another hub process on the same database (tests of two hubs). */
  async apiAt(baseUrl: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { ...headers, Authorization: `Bearer ${LAB_TOKEN}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  async backup(type: 'full' | 'incremental' | 'auto', vmId = 'vm1', correlationId?: string): Promise<string> {
    const res = await this.api('POST', '/api/v1/backups', { vmId, repositoryId: this.repositoryId, type }, correlationId ? { 'X-Correlation-Id': correlationId } : {});
    if (res.status !== 202) throw new Error(`backup refused: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.jobId;
  }

  async job(jobId: string): Promise<any> {
    return (await this.api('GET', `/api/v1/backups/${jobId}`)).body;
  }

  async waitForJob(jobId: string, timeoutMs = 60_000): Promise<any> {
    let job: any;
    await this.until(async () => {
      job = await this.job(jobId);
      return job.status === 'completed' || job.status === 'failed';
    }, timeoutMs, `job ${jobId} to end`);
    // Jobs and restore points are two read models, each catching up on its own: a completed job's point is
    // awaited where the restore points are listed, as a client reading both would.
    if (job.status === 'completed' && job.restorePointId) {
      await this.until(async () => (await this.api('GET', `/api/v1/restore-points/${job.restorePointId}`)).status === 200, 10_000, `restore point ${job.restorePointId} to be listed`);
    }
    return job;
  }

  async events(jobId: string): Promise<{ type: string; data: any; metadata: any }[]> {
    return (await this.api('GET', `/api/v1/audit/streams/backup-job-${jobId}?limit=1000`)).body.events;
  }

  /** A job's whole audit story: every event of every stream carrying its correlation id, in global order. */
  async story(correlationId: string): Promise<AuditEvent[]> {
    return (await this.api('GET', `/api/v1/audit/correlations/${correlationId}?limit=1000`)).body.events;
  }

  /** What a finished job must leave behind: no qemu-nbd, no lease, no stray image or temp file. */
  async leftovers(vmIds?: string[]): Promise<{ qemuNbd: string[]; leases: number; strayFiles: string[] }> {
    const qemuNbd = processesMentioning(this.hubDataDir).filter((p) => p.cmdline.includes('qemu-nbd')).map((p) => p.cmdline);
    const leases = (await this.api('GET', '/api/v1/nbd/ports')).body.length;
    // a hub without an agent (the second hub of a sync) knows VMs only by their restore points: the test names them
    vmIds ??= ((await this.api('GET', '/api/v1/vms')).body as { vmId: string }[]).map((v) => v.vmId);
    const points: { disks: { file: string; digests?: { file: string } | null }[] }[] = [];
    for (const vmId of vmIds) points.push(...(await this.api('GET', `/api/v1/vms/${vmId}/restore-points?repositoryId=${this.repositoryId}`)).body);
    const known = new Set(points.flatMap((p) => p.disks.flatMap((d) => [d.file, ...(d.digests ? [d.digests.file] : [])])));
    const { stdout } = await run('find', [this.repoRoot, '-type', 'f', '-not', '-path', '*/manifests/*.json']);
    const strayFiles = stdout.split('\n').filter(Boolean).map((f) => f.slice(this.repoRoot.length + 1)).filter((f) => !known.has(f) && f !== '.sendense-repository');
    return { qemuNbd, leases, strayFiles };
  }

  /**
   * A VM's row of the protection report once `settled` holds of it. The report is a read model of its own, a moment
   * behind the restores' and jobs' that a test waited on.
   */
  async protectionOf(vmId: string, settled: (row: any) => boolean, timeoutMs = 30_000): Promise<any> {
    let row: any;
    const read = async () => (row = ((await this.api('GET', '/api/v1/reports/protection')).body.vms as { vmId: string }[]).find((v) => v.vmId === vmId));
    await this.until(async () => settled(await read()), timeoutMs, `the protection report of VM ${vmId} to settle`).catch(() => undefined);
    // the caller's own assertions say what the row lacks
    return row;
  }

  /** What else a failed wait shows, beyond the hub's and agent's output. */
  protected diagnostics(): string {
    return '';
  }

  async until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\nhub output:\n${this.hub?.output().slice(-3000)}\nagent output:\n${this.agent?.output().slice(-3000)}${this.diagnostics()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(child?: SpawnedCli, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!child || child.child.exitCode !== null || child.child.signalCode !== null) return;
    child.child.kill(signal);
    await child.exited;
  }

  async close(): Promise<void> {
    await this.stop(this.agent);
    await this.stop(this.hub);
    for (const p of processesMentioning(this.dir)) process.kill(p.pid, 'SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
    await this.db.drop();
  }
}
