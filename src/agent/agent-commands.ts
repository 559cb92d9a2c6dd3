import { join } from 'node:path';
import { option } from '../config/cli-args';
import pino from 'pino';
import { generateAgentKey, TunnelClient } from '../tunnel';
import { AgentApi } from './agent-api';
import { agentDir, loadAgentState, saveAgentState } from './agent-state';
import { BackupRunner } from './backup-runner';
import { HubClient } from './hub-client';
import { CAUSATION_HEADER, CORRELATION_HEADER } from '../wire/backup-protocol';
import { BASE_ALLOCATION, openNbd, pskStartTls } from '../nbd-protocol';
import { RestoreRunner } from './restore-runner';
import { LibvirtRestorer } from './sources/libvirt/libvirt-restorer';
import { QemuImageSource } from './sources/qemu-image';
import { LibvirtSource } from './sources/libvirt';
import type { BackupSource } from './sources/backup-source';

/** `sendense agent register --hub URL --name NAME`: creates the agent key and registers it with the hub. */
export async function registerAgent(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const hubUrl = option(args, '--hub') ?? env.SENDENSE_HUB ?? 'http://127.0.0.1:8082';
  const name = option(args, '--name');
  const token = env.SENDENSE_TOKEN;
  if (!name) throw new Error('usage: sendense agent register --hub URL --name NAME (token in SENDENSE_TOKEN)');
  if (!token) throw new Error('SENDENSE_TOKEN must hold a hub API token to register an agent');
  const dir = agentDir(env);
  const key = await generateAgentKey(dir);
  const res = await fetch(`${hubUrl.replace(/\/+$/, '')}/api/v1/agents`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name, publicKey: key.publicKey }),
  });
  const body = (await res.json().catch(() => ({}))) as { agentId?: string; token?: string; fingerprint?: string; message?: unknown; ssh?: { port: number; hostKeyFingerprint: string } };
  if (res.status !== 201) throw new Error(`the hub refused the registration (${res.status}): ${JSON.stringify(body.message ?? body)}`);
  saveAgentState(dir, {
    agentId: body.agentId!,
    name,
    hubUrl,
    token: body.token!,
    fingerprint: body.fingerprint!,
    ssh: { host: new URL(hubUrl).hostname, port: body.ssh!.port, hostKeyFingerprint: body.ssh!.hostKeyFingerprint },
  });
  process.stdout.write(`registered agent ${name} (${body.agentId}) with key ${body.fingerprint}; state in ${join(dir, 'agent.json')}\n`);
}

/** `--libvirt [URI]`: the URI when one follows the flag, else libvirt's system connection. */
export function libvirtUri(args: string[]): string | undefined {
  const i = args.indexOf('--libvirt');
  if (i < 0) return undefined;
  const next = args[i + 1];
  return next && !next.startsWith('--') ? next : 'qemu:///system';
}

/** `--max-rate MiB` (or SENDENSE_MAX_RATE): each disk of a backup is read no faster than this many MiB/s. */
function maxRateOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const mib = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(mib > 0)) throw new Error(`sendense agent run: --max-rate takes MiB per second (a positive number), not ${JSON.stringify(value)}`);
  return Math.round(mib * 1024 * 1024);
}

/** `sendense agent run --inventory FILE | --libvirt [URI]`: serves the agent API through the tunnel until stopped. */
export async function runAgent(args: string[], env: NodeJS.ProcessEnv): Promise<() => Promise<void>> {
  const inventoryFile = option(args, '--inventory') ?? env.SENDENSE_INVENTORY;
  const uri = libvirtUri(args) ?? env.SENDENSE_LIBVIRT_URI;
  if (!inventoryFile && !uri) throw new Error('usage: sendense agent run --inventory FILE | --libvirt [URI]');
  if (inventoryFile && uri) throw new Error('sendense agent run: give --inventory FILE or --libvirt [URI], not both (one agent per source)');
  const maxRate = maxRateOption(option(args, '--max-rate') ?? env.SENDENSE_MAX_RATE);
  const dir = agentDir(env);
  const state = loadAgentState(dir);
  const log = pino({ level: env.SENDENSE_LOG_LEVEL ?? 'info', base: { component: 'agent', agent: state.name } });
  await import('node:fs').then((fs) => fs.mkdirSync(join(dir, 'run'), { recursive: true }));
  let source: BackupSource;
  if (uri) {
    // qemu (libvirt's qemu user) creates each backup's NBD socket under the state dir: it must be able to pass
    // through it. Search only: the files in it (key, token) stay 0600.
    await import('node:fs').then((fs) => fs.chmodSync(dir, 0o711));
    source = new LibvirtSource({ uri, workDir: join(dir, 'libvirt'), log: (level, message) => log[level](message) });
  } else {
    source = new QemuImageSource({ inventoryFile, runDir: join(dir, 'run') });
  }
  await source.cleanupLeftovers();

  let hubApiPort = 0;
  const hub = new HubClient(() => `http://127.0.0.1:${hubApiPort}`, state.token);
  let tunnel: TunnelClient;
  const runner = new BackupRunner({
    source,
    // Straight to the hub's export, not through the tunnel: ssh2's 32 KiB channel packets held a backup to a
    // quarter of the disk's speed (docs/benchmarks.md). The export's own key, handed over inside the tunnel,
    // authenticates both ends and encrypts the data.
    connectTarget: (nbd) => openNbd({ transport: 'tcp', host: state.ssh.host, port: nbd.port, exportName: nbd.exportName }, { startTls: pskStartTls(nbd.psk) }),
    report: async (job, report) => {
      await hub.send('POST', `/api/v1/backups/${job.jobId}/agent-reports`, report, { [CORRELATION_HEADER]: job.correlationId, ...(job.causationId ? { [CAUSATION_HEADER]: job.causationId } : {}) });
    },
    uploadDigests: async (job, diskId, digests) => {
      await hub.put(`/api/v1/backups/${job.jobId}/disks/${diskId}/digests`, digests, { [CORRELATION_HEADER]: job.correlationId });
    },
    uploadConfiguration: async (job, configuration) => {
      await hub.put(`/api/v1/backups/${job.jobId}/configuration`, Buffer.from(JSON.stringify(configuration)), { [CORRELATION_HEADER]: job.correlationId });
    },
    log: (level, message) => log[level](message),
    maxBytesPerSecond: maxRate,
  });
  const restores = new RestoreRunner({
    host: source instanceof LibvirtSource ? new LibvirtRestorer(source, { workDir: join(dir, 'libvirt'), log: (level, message) => log[level](message) }) : null,
    workDir: join(dir, 'restores'),
    hubHost: state.ssh.host,
    // As a backup's targets: straight to the hub's export over TLS with its own key, not through the tunnel.
    connectSource: (nbd) => openNbd({ transport: 'tcp', host: state.ssh.host, port: nbd.port, exportName: nbd.exportName }, { startTls: pskStartTls(nbd.psk), metaContexts: [BASE_ALLOCATION] }),
    fetchDigests: (restore, diskId) => hub.get(`/api/v1/restores/${restore.restoreId}/disks/${diskId}/digests`, { [CORRELATION_HEADER]: restore.correlationId }),
    report: async (restore, report) => {
      await hub.send('POST', `/api/v1/restores/${restore.restoreId}/agent-reports`, report, { [CORRELATION_HEADER]: restore.correlationId });
    },
    log: (level, message) => log[level](message),
  });
  await restores.cleanupLeftovers();
  const api = new AgentApi(source, runner, restores);
  const apiPort = await api.listen();
  tunnel = new TunnelClient({
    host: state.ssh.host,
    port: state.ssh.port,
    privateKeyFile: join(dir, 'id_ed25519'),
    hostKeyFingerprint: state.ssh.hostKeyFingerprint,
    localApiPort: apiPort,
    log,
  });
  const hubForward = await tunnel.forwardLocal(Number(new URL(state.hubUrl).port || 80));
  hubApiPort = hubForward.port;
  const reportInventory = async () => {
    const scan = await source.scanInventory();
    for (const p of scan.problems) log.warn(`disk ${p.diskId} of VM ${p.vmId} cannot be backed up: ${p.message}`);
    const vms = scan.vms.map((vm) => ({ vmId: vm.id, name: vm.name, disks: vm.disks.map((d) => ({ diskId: d.id, path: d.path, format: d.format, virtualSize: d.virtualSize, changeTracking: d.changeTracking })) }));
    await hub.send('PUT', `/api/v1/agents/${state.agentId}/inventory`, { vms });
  };
  tunnel.on('connected', () => {
    log.info('connected to the hub');
    reportInventory().catch((e) => log.error(`reporting the inventory failed: ${String(e)}`));
  });
  tunnel.on('disconnected', (reason: string) => log.warn(`disconnected from the hub: ${reason}`));
  tunnel.start();
  // Domains come and go without telling us: the inventory is compared every few seconds and re-reported when it changed.
  let lastInventory = '';
  const watch = uri
    ? setInterval(() => {
        source
          .scanInventory()
          .then(async (scan) => {
            const now = JSON.stringify(scan);
            if (lastInventory && now !== lastInventory) await reportInventory();
            lastInventory = now;
          })
          .catch((e) => log.warn(`scanning libvirt's domains failed: ${String(e)}`));
      }, Number(env.SENDENSE_INVENTORY_POLL_MS ?? 5000))
    : undefined;
  return async () => {
    clearInterval(watch);
    await runner.stopAll();
    await restores.stopAll();
    await source.closeAll().catch(() => undefined);
    await hubForward.close();
    await tunnel.stop();
    await api.close();
  };
}
