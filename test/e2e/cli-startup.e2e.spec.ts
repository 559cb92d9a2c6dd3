import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = join(__dirname, '..', '..', 'bin', 'sendense.js');
/** The hub, the agent and the data mover (NestJS, TypeORM, pg, ssh2, pino): a client command that loads them starts ~15x slower. */
const HEAVY = /node_modules|dist\/(src\/(hub|agent|tunnel|event-store|database|data-mover|nbd-protocol)|projections)\//;

/** Runs the real CLI from dist/ with a preload that writes every module it required when it exits. */
function loadedModules(dir: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string; modules: string[] }> {
  const hook = join(dir, 'record-modules.js');
  const out = join(dir, `modules-${args.join('-')}.txt`);
  writeFileSync(hook, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, Object.keys(require.cache).join('\\n')));\n`);
  return new Promise((resolve) =>
    execFile(process.execPath, ['--require', hook, BIN, ...args], { env: { PATH: process.env.PATH, ...env } }, (error, stdout, stderr) =>
      resolve({ code: (error as { code?: number } | null)?.code ?? 0, stdout, stderr, modules: readFileSync(out, 'utf8').split('\n') }),
    ),
  );
}

describe('CLI start-up', () => {
  let dir: string;
  let hub: Server;
  let url: string;
  const requests: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-cli-startup-'));
    // Stands in for the hub's HTTP API only: what is measured here is what the client loads.
    hub = createServer((req, res) => {
      requests.push(`${req.method} ${req.url} ${req.headers.authorization}`);
      res.setHeader('Content-Type', 'application/json');
      if (/^\/api\/v1\/backups(\?|$)/.test(req.url ?? '')) res.end(JSON.stringify({ jobs: [{ jobId: 'j1', vmId: 'vm-1', type: 'full', requestedType: 'auto', phase: 'completed', bytesWritten: '1048576', requestedAt: '2025-01-01T00:00:00Z', error: null }] }));
      else if (req.url?.startsWith('/api/v1/vms/vm-1/restore-points')) res.end(JSON.stringify([{ restorePointId: 'rp1', type: 'full', parentId: null, disks: [{ diskId: 'vda', fileBytes: 2048 }], createdAt: '2025-01-01T00:00:00Z' }]));
      else {
        res.statusCode = 404;
        res.end(JSON.stringify({ message: 'no such thing' }));
      }
    });
    await new Promise<void>((r) => hub.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(hub.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => hub.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('--help loads no part of the hub or the agent', async () => {
    const { code, stdout, modules } = await loadedModules(dir, ['--help'], {});
    expect(code).toBe(0);
    expect(stdout).toContain('usage: sendense');
    expect(modules.some((m) => m.endsWith('dist/src/cli/main.js'))).toBe(true);
    expect(modules.filter((m) => HEAVY.test(m))).toEqual([]);
  });

  it.each([
    [['backup', 'list'], 'j1  vm-1'],
    [['restore-points', 'list', '--vm', 'vm-1'], 'rp1  full'],
  ])('%j talks to the hub and loads no part of the hub or the agent', async (args, expected) => {
    const { code, stdout, modules } = await loadedModules(dir, args, { SENDENSE_HUB: url, SENDENSE_TOKEN: 'client-token' });
    expect(code).toBe(0);
    expect(stdout).toContain(expected);
    expect(requests.at(-1)).toMatch(/Bearer client-token$/);
    expect(modules.filter((m) => HEAVY.test(m))).toEqual([]);
  });

  it('a hub error reaches the user as a message and exit code 1', async () => {
    const { code, stderr } = await loadedModules(dir, ['backup', 'show', 'missing'], { SENDENSE_HUB: url, SENDENSE_TOKEN: 'client-token' });
    expect(code).toBe(1);
    expect(stderr).toContain('GET /api/v1/backups/missing: 404 no such thing');
  });
});
