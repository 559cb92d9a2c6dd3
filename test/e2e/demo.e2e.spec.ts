import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../support/processes';

const ROOT = join(__dirname, '..', '..');

/** Processes started with this data dir in their environment: the demo's hub, its PostgreSQL, its agent and their helpers. */
function processesOf(dataDir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      if (readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`SENDENSE_DATA_DIR=${dataDir}`)) found.push(`${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ')}`);
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

/**
 * The newcomer's first command, `npm run demo` (deployment/demo.sh), run as they run it: on embedded defaults, with
 * `--keep-running`, then stopped as Ctrl-C stops it. What it must show: data given back and checked, a console with
 * real data in it, its address, and nothing left running after it.
 */
describe('the demo (npm run demo -- --keep-running)', () => {
  let base: string;
  let dataDir: string;

  beforeAll(() => {
    // The embedded PostgreSQL runs as user postgres when the tests run as root: it must reach the data dir.
    base = mkdtempSync('/var/tmp/sendense-demo-test-');
    chmodSync(base, 0o755);
    dataDir = join(base, 'var');
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('backs up, restores a file and a disk that pass their checks, fills the console, names its address and stops cleanly', async () => {
    const apiPort = await freePort();
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, SENDENSE_DATA_DIR: dataDir, SENDENSE_API_PORT: String(apiPort), SENDENSE_SSH_PORT: String(await freePort()), SENDENSE_NBD_PORTS: '14200-14231' };
    const demo = spawn('bash', ['deployment/demo.sh', '--keep-running'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    demo.stdout.on('data', (d) => (out += d));
    demo.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => demo.on('exit', (code) => resolve(code)));
    try {
      const ready = await Promise.race([
        (async () => {
          while (!/Ctrl-C stops hub and agent/.test(out)) await new Promise((r) => setTimeout(r, 200));
          return true;
        })(),
        exited.then(() => false),
      ]);
      expect({ ready, out: ready ? '' : out }).toEqual({ ready: true, out: '' });

      // The restores ran and their checks passed.
      expect(out).toMatch(/check passed: SHA-256 [0-9a-f]{64}, equal to the original file's/);
      expect(out).toContain('Images are identical.');
      expect(out).toContain('check passed: qemu-img compare finds the image equal to the VM\'s disk0');
      // Its last words name the console and how to log in.
      const lastLine = out.trim().split('\n').at(-1)!;
      expect(lastLine).toContain(`console: http://127.0.0.1:${apiPort}/console/`);
      expect(lastLine).toContain(`cat ${dataDir}/admin.token`);

      const consolePage = await fetch(`http://127.0.0.1:${apiPort}/console/`);
      expect(consolePage.status).toBe(200);
      expect(await consolePage.text()).toContain('<script');

      // The console has real data to show: points in two repositories, a policy and a failed job with its reason.
      const token = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
      const api = async <T>(path: string): Promise<T> => {
        const res = await fetch(`http://127.0.0.1:${apiPort}/api/v1/${path}`, { headers: { Authorization: `Bearer ${token}` } });
        expect(res.status).toBe(200);
        return (await res.json()) as T;
      };
      const repositories = await api<{ repositoryId: string; name: string; layout: string }[]>('repositories');
      expect(repositories.map((r) => `${r.name}:${r.layout}`).sort()).toEqual(['demo-chunks:chunks', 'demo:qcow2']);
      for (const r of repositories) expect((await api<unknown[]>(`vms/demo-vm/restore-points?repositoryId=${r.repositoryId}`)).length).toBeGreaterThan(0);
      expect((await api<{ name: string }[]>('policies')).map((p) => p.name)).toEqual(['demo-nightly']);
      const { jobs } = await api<{ jobs: { vmId: string; status: string; error: string | null }[] }>('backups');
      expect(jobs.filter((j) => j.status === 'failed').map((j) => [j.vmId, /vm2-disk0\.qcow2.*No such file/.test(j.error ?? '')])).toEqual([['demo-vm2', true]]);
      expect(jobs.filter((j) => j.status === 'completed').length).toBe(3);
    } finally {
      demo.kill('SIGTERM');
      await exited;
    }
    expect(processesOf(dataDir)).toEqual([]);
    expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(base);
  }, 240_000);
});
