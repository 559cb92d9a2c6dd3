import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openNbd } from '../nbd-protocol/open-nbd';
import type { ChildProcessHandle } from '../process/child-process';
import { terminateProcess } from '../process/child-process';
import { runQemuImg } from '../qemu/qemu-img';
import { buildSocketExportArgs } from '../qemu/qemu-nbd-args';
import { launchQemuNbd } from '../qemu/qemu-nbd-launcher';
import type { RestoreReport, RestoreStartRequest } from '../wire/restore-protocol';
import { HubAnswerError } from './hub-client';
import { type RestoreHost, RestoreRunner } from './restore-runner';

/**
 * A full restore's end, with real qemu-img and qemu-nbd (the point served from a qcow2 on a Unix socket, the restored
 * disk written and read back) and the hypervisor faked: a domain defined on verified disks is the restore's result,
 * and a hub that is busy for a moment, or cannot be told at all, never has it undone.
 */

jest.setTimeout(60_000);

const MiB = 1024 * 1024;
let dir: string;
let source: ChildProcessHandle | undefined;
let socket: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sendense-restore-commit-'));
  const raw = join(dir, 'point.raw');
  writeFileSync(raw, randomBytes(2 * MiB));
  await runQemuImg(['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, join(dir, 'point.qcow2')]);
  socket = join(dir, 'point.sock');
  const pidFile = join(dir, 'point.pid');
  const args = buildSocketExportArgs({ socket, exportName: 'vda', shared: 4, file: join(dir, 'point.qcow2'), format: 'qcow2' }, pidFile);
  source = await launchQemuNbd({ args, pidFile, listen: { socket }, logFile: join(dir, 'point.log'), detached: false }, { readyTimeoutMs: 10_000 });
});

afterAll(async () => {
  if (source) await terminateProcess(source, 5_000, 'the point export');
  rmSync(dir, { recursive: true, force: true });
});

const request = (restoreId: string): RestoreStartRequest => ({
  restoreId,
  correlationId: `corr-${restoreId}`,
  causationId: `cause-${restoreId}`,
  restorePointId: 'rp-1',
  vmId: 'vm-1',
  mode: 'full',
  target: { kind: 'new-domain', name: `web-${restoreId}`, storageDir: null, start: true },
  configuration: null,
  definition: { memoryMiB: 64, vcpus: 1 },
  disks: [{ diskId: 'vda', virtualSize: 2 * MiB, digests: false, nbd: { port: 1, exportName: 'vda', psk: { identity: 'x', key: '00'.repeat(32) } } }],
});

/** A full restore of the point into `storage`, the hub answering each report with `answer(report, n)` (n: tries of that type). */
async function restore(restoreId: string, answer: (r: RestoreReport, n: number) => Error | null) {
  const storage = join(dir, restoreId);
  const workDir = join(dir, `${restoreId}-agent`);
  mkdirSync(storage);
  mkdirSync(workDir);
  const file = join(storage, 'vda.qcow2');
  const calls: string[] = [];
  const host = {
    plan: async () => [{ diskId: 'vda', virtualSize: 2 * MiB, format: 'qcow2' as const, write: file, final: file, owner: null }],
    commit: async (req: RestoreStartRequest) => {
      calls.push('commit');
      return { name: (req.target as { name: string }).name, uuid: 'uuid-1', started: true, notes: [] };
    },
    undo: async () => {
      calls.push('undo');
      return [];
    },
  } as Partial<RestoreHost> as RestoreHost;
  const tries = new Map<string, number>();
  const taken: RestoreReport[] = [];
  const logs: string[] = [];
  const runner = new RestoreRunner({
    host,
    workDir,
    hubHost: '127.0.0.1',
    connectSource: () => openNbd(`nbd+unix:///vda?socket=${socket}`, { metaContexts: ['base:allocation'] }),
    fetchDigests: () => Promise.reject(new Error('not reached')),
    report: async (_restore, r) => {
      const n = (tries.get(r.type) ?? 0) + 1;
      tries.set(r.type, n);
      const error = answer(r, n);
      if (error) throw error;
      if (r.type !== 'disk-progressed') taken.push(r);
    },
    log: (level, message) => void logs.push(`${level}: ${message}`),
  });
  runner.start(request(restoreId));
  for (const deadline = Date.now() + 50_000; runner.isRunning(restoreId); await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() > deadline) throw new Error(`restore ${restoreId} did not end`);
  }
  return { calls, taken, tries, logs, file, journals: readdirSync(workDir).filter((f) => f.startsWith('restore-')) };
}

describe('a full restore whose domain is defined is never undone for the hub', () => {
  it('a hub busy for a moment when a disk is written, or when the domain is defined, is told again: the restore finishes', async () => {
    const busyOnce = (types: string[]) => (r: RestoreReport, n: number) => (types.includes(r.type) && n === 1 ? new HubAnswerError(503, 'hub answered 503') : null);
    const done = await restore('busy', busyOnce(['disk-completed', 'domain-defined']));
    expect(done.calls).toEqual(['commit']);
    expect(done.taken.map((r) => r.type)).toEqual(['restore-started', 'disk-completed', 'domain-defined', 'finished']);
    expect(done.tries.get('disk-completed')).toBe(2);
    expect(done.journals).toEqual([]);
    expect((await runQemuImg(['compare', '-q', join(dir, 'point.qcow2'), done.file]).then(() => 'same', () => 'differs'))).toBe('same');
  });

  it('a hub that refuses the reports after the domain was defined leaves the domain and its disk as they are, and is not told the restore failed', async () => {
    const done = await restore('refused', (r) => (r.type === 'domain-defined' || r.type === 'finished' ? new HubAnswerError(404, `hub answered 404: no such restore`) : null));
    expect(done.calls).toEqual(['commit']);
    expect(done.taken.map((r) => r.type)).toEqual(['restore-started', 'disk-completed']);
    expect(existsSync(done.file)).toBe(true);
    expect(done.logs.filter((l) => l.startsWith('error: ') && l.includes('is restored and stays'))).toHaveLength(2);
    expect(done.journals).toEqual([]);
  });
});
