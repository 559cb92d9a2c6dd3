import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { TunnelClient } from '../../src/tunnel';
import { BackupLab } from '../support/backup-lab';
import { processesMentioning } from '../support/processes';

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? [join(dir, e.name), ...filesUnder(join(dir, e.name))] : [join(dir, e.name)]));
}

/**
 * A compromised agent host keeps the agent's key and answers the hub's calls itself (a real hub process, the agent's
 * real SSH tunnel from that key, an HTTP server of the attacker's behind it). Its backup plan names disks whose ids
 * climb out of the job's repository: into another chunks repository, where the hub would have committed a point
 * index of the attacker's, and into another VM's directory of a qcow2 repository. The hub refuses the plan, names the
 * agent and the field, and creates, exports and leaves nothing.
 */
describe('security: an agent cannot make the hub write outside its VM', () => {
  const lab = new BackupLab();
  let attacker: Server;
  let tunnel: TunnelClient | undefined;
  let plans = 0;
  const hostileDisk = { diskId: 'vda', virtualSize: 64 << 20, format: 'qcow2' };
  const repositories = { a: '', b: '' };
  const dirs = () => ({ a: join(lab.dir, 'a'), b: join(lab.dir, 'b') });

  beforeAll(async () => {
    await lab.start();
    const keyFile = join(lab.dir, 'repo.key');
    writeFileSync(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    for (const name of ['a', 'b'] as const) {
      mkdirSync(dirs()[name]);
      const res = await lab.api('POST', '/api/v1/repositories', { name, kind: 'local', path: dirs()[name], layout: 'chunks', encryption: { keyFile } });
      expect(res.status).toBe(201);
      repositories[name] = res.body.repositoryId;
    }
    const agentId = ((await lab.api('GET', '/api/v1/vms')).body as { vmId: string; agentId: string }[]).find((v) => v.vmId === 'vm1')!.agentId;
    await lab.stop(lab.agent);

    // the attacker's agent API: a plan of its own making; any other call fails
    attacker = createServer((req, res) => {
      if (req.method === 'POST' && req.url === '/api/v1/backup/plan') {
        plans++;
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ mode: 'full', reason: 'hostile', disks: [hostileDisk] }));
        return;
      }
      res.writeHead(500, { 'Content-Type': 'application/json' }).end(JSON.stringify({ statusCode: 500, message: 'the attacker ends the job here' }));
    });
    await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', r));
    tunnel = new TunnelClient({
      host: '127.0.0.1',
      port: lab.sshPort,
      privateKeyFile: join(lab.dir, 'agent', 'id_ed25519'),
      knownHostsFile: join(lab.dir, 'attacker-known-hosts'),
      localApiPort: (attacker.address() as AddressInfo).port,
    });
    tunnel.start();
    await tunnel.waitConnected(30_000);
    await lab.until(async () => ((await lab.api('GET', '/api/v1/agents')).body as { agentId: string; connected: boolean }[]).some((a) => a.agentId === agentId && a.connected), 30_000, "the attacker's tunnel to be the agent's session");
  }, 180_000);

  afterAll(async () => {
    await tunnel?.stop();
    await new Promise<void>((r) => (attacker ? attacker.close(() => r()) : r()));
    await lab.close();
  }, 60_000);

  const backupFails = async (repositoryId: string) => {
    const before = plans;
    const res = await lab.api('POST', '/api/v1/backups', { vmId: 'vm1', repositoryId, type: 'full' });
    expect(res.status).toBe(202);
    const job = await lab.waitForJob(res.body.jobId, 60_000);
    expect(plans).toBe(before + 1);
    return job;
  };

  it("a disk id that climbs into another repository: the job fails naming the agent's plan, and the other repository gets no point", async () => {
    // the point index the hub would write: <a>/chunks/points/vm1/<point>/<diskId>.idx, so this lands in <b>/chunks/points/v/p/d.idx
    hostileDisk.diskId = `../../../../../../../../../..${dirs().b}/chunks/points/v/p/d`;
    const bBefore = filesUnder(dirs().b);
    const job = await backupFails(repositories.a);
    expect(job.status).toBe('failed');
    expect(filesUnder(dirs().b)).toEqual(bBefore);
    expect(filesUnder(join(dirs().a, 'chunks', 'points'))).toEqual([]);
    expect(processesMentioning(dirs().b)).toEqual([]);
    expect(job.error).toContain('answered /api/v1/backup/plan with an invalid plan: disks[0].diskId');
    expect(job.error).toContain('is not a valid identifier');
  });

  it("a disk id that is another VM's directory of a qcow2 repository: refused the same way, nothing created there", async () => {
    hostileDisk.diskId = '../vm2';
    const job = await backupFails(lab.repositoryId);
    expect(job.status).toBe('failed');
    expect(existsSync(join(lab.repoRoot, 'vm2'))).toBe(false);
    expect(await lab.leftovers()).toEqual({ qemuNbd: [], leases: 0, strayFiles: [] });
    expect(job.error).toContain('disks[0].diskId "../vm2" is not a valid identifier');
  });
});
