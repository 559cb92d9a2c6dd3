import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { option } from '../config/cli-args';
import pino from 'pino';
import { generateAgentKey, TunnelClient } from '../tunnel';
import { AgentApi } from './agent-api';
import { agentDir, loadAgentState, saveAgentState } from './agent-state';
import { BackupRunner } from './backup-runner';
import { HubClient } from './hub-client';
import { hubEndpoint, hubRequest, readAll } from '../wire/hub-tls';
import { CAUSATION_HEADER, CORRELATION_HEADER } from '../wire/backup-protocol';
import { BASE_ALLOCATION, openNbd, pskStartTls } from '../nbd-protocol';
import { RestoreRunner } from './restore-runner';
import { LibvirtRestorer } from './sources/libvirt/libvirt-restorer';
import { QemuImageSource } from './sources/qemu-image';
import { LibvirtSource } from './sources/libvirt';
import { VsphereClient, type VsphereOptions } from './sources/vsphere/vsphere-client';
import { VsphereSource } from './sources/vsphere/vsphere-source';
import type { BackupSource } from './sources/backup-source';
import { repeatAfter } from '../process/repeat';

/** How long a backup's connection waits for a hub export still starting: the hub gives an export 10 s to serve. */
const EXPORT_START_WAIT_MS = 15_000;

/** `sendense agent register --hub URL [--hub-fingerprint F] --name NAME`: creates the agent key and registers it with the hub. */
export async function registerAgent(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const name = option(args, '--name');
  const token = env.SENDENSE_TOKEN;
  if (!name) throw new Error('usage: sendense agent register --hub URL [--hub-fingerprint SHA256:...] --name NAME (token in SENDENSE_TOKEN)');
  if (!token) throw new Error('SENDENSE_TOKEN must hold a hub API token to register an agent');
  // checked before the key is made and before anything is sent: the token goes only to the pinned hub, never in clear
  const endpoint = hubEndpoint(env, option(args, '--hub'), option(args, '--hub-fingerprint'));
  const hubUrl = endpoint.url.href.replace(/\/+$/, '');
  const dir = agentDir(env);
  const key = await generateAgentKey(dir);
  const res = await hubRequest(endpoint, {
    method: 'POST',
    path: `${endpoint.url.pathname.replace(/\/+$/, '')}/api/v1/agents`,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ name, publicKey: key.publicKey }),
  });
  const text = (await readAll(res)).toString('utf8');
  let body: { agentId?: string; token?: string; fingerprint?: string; message?: unknown; ssh?: { port: number; hostKeyFingerprint: string } } = {};
  try {
    body = JSON.parse(text);
  } catch {
    body = { message: text.slice(0, 500) };
  }
  if (res.statusCode !== 201) throw new Error(`the hub refused the registration (${res.statusCode}): ${JSON.stringify(body.message ?? body)}`);
  saveAgentState(dir, {
    agentId: body.agentId!,
    name,
    hubUrl,
    hubFingerprint: endpoint.fingerprint ?? null,
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

/**
 * `--vsphere https://vcenter/sdk --vsphere-user U --vsphere-password-file F [--vsphere-thumbprint T]`: the
 * connection settings, read and checked before anything connects. The password comes from a file so that it
 * shows in no process list.
 */
export function vsphereOptions(args: string[], env: NodeJS.ProcessEnv): VsphereOptions | undefined {
  const sdkUrl = option(args, '--vsphere') ?? env.SENDENSE_VSPHERE_URL;
  if (!sdkUrl) return undefined;
  let url: URL;
  try {
    url = new URL(sdkUrl);
  } catch {
    throw new Error(`sendense agent run: --vsphere takes the SDK URL (https://vcenter.example/sdk), not ${JSON.stringify(sdkUrl)}`);
  }
  if (url.protocol !== 'https:') throw new Error('sendense agent run: --vsphere must be an https:// URL (the password and the disks travel over it)');
  const user = option(args, '--vsphere-user') ?? env.SENDENSE_VSPHERE_USER;
  const passwordFile = option(args, '--vsphere-password-file') ?? env.SENDENSE_VSPHERE_PASSWORD_FILE;
  if (!user || !passwordFile) throw new Error('sendense agent run: --vsphere needs --vsphere-user USER and --vsphere-password-file FILE');
  const password = readFileSync(passwordFile, 'utf8').replace(/\r?\n$/, '');
  if (!password) throw new Error(`sendense agent run: ${passwordFile} is empty`);
  const thumbprint = option(args, '--vsphere-thumbprint') ?? env.SENDENSE_VSPHERE_THUMBPRINT;
  return { sdkUrl: url.toString(), user, password, ...(thumbprint ? { thumbprint } : {}) };
}

/** `sendense agent run --inventory FILE | --libvirt [URI] | --vsphere URL ...`: serves the agent API through the tunnel until stopped. */
export async function runAgent(args: string[], env: NodeJS.ProcessEnv): Promise<() => Promise<void>> {
  const inventoryFile = option(args, '--inventory') ?? env.SENDENSE_INVENTORY;
  const uri = libvirtUri(args) ?? env.SENDENSE_LIBVIRT_URI;
  const vsphere = vsphereOptions(args, env);
  const given = [inventoryFile, uri, vsphere].filter(Boolean).length;
  if (given === 0) throw new Error('usage: sendense agent run --inventory FILE | --libvirt [URI] | --vsphere URL --vsphere-user USER --vsphere-password-file FILE');
  if (given > 1) throw new Error('sendense agent run: give one of --inventory FILE, --libvirt [URI] or --vsphere URL (one agent per source)');
  const maxRate = maxRateOption(option(args, '--max-rate') ?? env.SENDENSE_MAX_RATE);
  const dir = agentDir(env);
  const state = loadAgentState(dir);
  const log = pino({ level: env.SENDENSE_LOG_LEVEL ?? 'info', base: { component: 'agent', agent: state.name } });
  await import('node:fs').then((fs) => fs.mkdirSync(join(dir, 'run'), { recursive: true }));
  let source: BackupSource;
  if (vsphere) {
    // Named by this agent, so that a snapshot a killed agent left is found and removed at its next start, and
    // another agent's (or an operator's) snapshot never is.
    source = new VsphereSource({ connect: () => VsphereClient.connect(vsphere), snapshotPrefix: `sendense-${state.agentId.slice(0, 8)}-`, log: (level, message) => log[level](message) });
  } else if (uri) {
    // qemu (libvirt's qemu user) creates each backup's NBD socket under the state dir: it must be able to pass
    // through it. Search only: the files in it (key, token) stay 0600.
    await import('node:fs').then((fs) => fs.chmodSync(dir, 0o711));
    source = new LibvirtSource({ uri, workDir: join(dir, 'libvirt'), log: (level, message) => log[level](message) });
  } else {
    source = new QemuImageSource({ inventoryFile, runDir: join(dir, 'run') });
  }
  await source.cleanupLeftovers();

  let hubApiPort = 0;
  // The hub's API through the tunnel's local forward, spoken as at registration: HTTPS with the same certificate
  // pinned (or checked for the hub's name) when the hub serves TLS, so the forward changes nothing of what is checked.
  const hubUrl = new URL(state.hubUrl);
  const hub = new HubClient({ url: hubUrl, fingerprint: state.hubFingerprint ?? null }, () => hubApiPort, state.token);
  let tunnel: TunnelClient;
  const runner = new BackupRunner({
    source,
    // Straight to the hub's export, not through the tunnel: ssh2's 32 KiB channel packets held a backup to a
    // quarter of the disk's speed (docs/benchmarks.md). The export's own key, handed over inside the tunnel,
    // authenticates both ends and encrypts the data.
    // the hub starts its exports as it hands them over: a refused connection is tried again while they start
    connectTarget: (nbd, signal) => openNbd({ transport: 'tcp', host: state.ssh.host, port: nbd.port, exportName: nbd.exportName }, { startTls: pskStartTls(nbd.psk), refusedRetryMs: EXPORT_START_WAIT_MS, signal }),
    report: async (job, report) => {
      await hub.send('POST', `/api/v1/backups/${job.jobId}/agent-reports`, report, { [CORRELATION_HEADER]: job.correlationId, [CAUSATION_HEADER]: job.causationId });
    },
    uploadDigests: async (job, diskId, digests) => {
      await hub.put(`/api/v1/backups/${job.jobId}/disks/${diskId}/digests`, digests, { [CORRELATION_HEADER]: job.correlationId });
    },
    knownDigests: (job, diskId) => hub.get(`/api/v1/backups/${job.jobId}/disks/${diskId}/known-digests`, { [CORRELATION_HEADER]: job.correlationId }),
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
      await hub.send('POST', `/api/v1/restores/${restore.restoreId}/agent-reports`, report, { [CORRELATION_HEADER]: restore.correlationId, [CAUSATION_HEADER]: restore.causationId });
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
  const hubForward = await tunnel.forwardLocal(Number(hubUrl.port || (hubUrl.protocol === 'https:' ? 443 : 80)));
  hubApiPort = hubForward.port;
  const reportInventory = async () => {
    const scan = await source.scanInventory();
    for (const p of scan.problems) log.warn(`disk ${p.diskId} of VM ${p.vmId} cannot be backed up: ${p.message}`);
    const vms = scan.vms.map((vm) => ({
      vmId: vm.id,
      name: vm.name,
      ...(vm.powerState ? { powerState: vm.powerState } : {}),
      disks: vm.disks.map((d) => ({ diskId: d.id, path: d.path, format: d.format, virtualSize: d.virtualSize, changeTracking: d.changeTracking, ...(d.label ? { label: d.label } : {}), ...(d.datastore ? { datastore: d.datastore } : {}) })),
      ...(vm.leftOut ? { disksLeftOut: vm.leftOut } : {}),
    }));
    const answer = (await hub.send('PUT', `/api/v1/agents/${state.agentId}/inventory`, { vms })) as { refused?: { vmId: string; reason: string }[] } | null;
    for (const r of answer?.refused ?? []) log.warn(`the hub refused VM ${r.vmId}: ${r.reason}`);
  };
  let connected = false;
  tunnel.on('connected', () => {
    connected = true;
    log.info('connected to the hub');
    reportInventory().catch((e) => log.error(`reporting the inventory failed: ${String(e)}`));
  });
  tunnel.on('disconnected', (reason: string) => {
    connected = false;
    log.warn(`disconnected from the hub: ${reason}`);
  });
  tunnel.start();
  // vCenter says when a VM changes; it is asked, and the inventory re-reported at once.
  const vsphereWatch = new AbortController();
  if (source instanceof VsphereSource) {
    let reporting = Promise.resolve();
    const watching = (await source.client()).watchVms(() => {
      // the first answer (every VM) comes before the tunnel is up; connecting reports the inventory anyway
      if (!connected) return;
      reporting = reporting.then(() => reportInventory()).catch((e) => log.warn(`reporting the inventory failed: ${String(e)}`));
    }, vsphereWatch.signal);
    watching.catch((e) => log.error(`watching vCenter's VMs ended: ${String(e)}; the inventory is reported only when the agent reconnects`));
  }
  // Domains come and go without telling us: the inventory is compared every few seconds and re-reported when it
  // changed, one scan at a time.
  let lastInventory = '';
  const watch = uri
    ? repeatAfter(Number(env.SENDENSE_INVENTORY_POLL_MS ?? 5000), () =>
        source
          .scanInventory()
          .then(async (scan) => {
            const now = JSON.stringify(scan);
            if (lastInventory && now !== lastInventory) await reportInventory();
            lastInventory = now;
          })
          .catch((e) => log.warn(`scanning libvirt's domains failed: ${String(e)}`)),
      )
    : undefined;
  return async () => {
    // the scan under way ends first: the virsh shells it uses are closed below
    await watch?.stop();
    vsphereWatch.abort();
    await runner.stopAll();
    await restores.stopAll();
    await source.closeAll().catch(() => undefined);
    await hubForward.close();
    await tunnel.stop();
    await api.close();
  };
}
