import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChildProcessHandle, terminateProcess } from '../../../process/child-process';
import { readLogTail } from '../../../process/log-tail';
import { MAX_SOCKET_PATH } from '../../../process/socket-path';
import { processesWithArgument, readCmdline, readProcStat } from '../../../process/proc';
import { runQemuImg } from '../../../qemu/qemu-img';
import { BASE_ALLOCATION, NBD_STATE_HOLE, NBD_STATE_ZERO, openNbd, pskStartTls, type Extent } from '../../../nbd-protocol';
import type { RestoreStartRequest } from '../../../wire/restore-protocol';

/** One disk booted from the hub: a local overlay whose backing is the hub's export, read through a proxy on this host. */
export interface InstantDisk {
  diskId: string;
  overlay: string;
  /** The proxy's Unix socket, the overlay's (and the domain's) backing. */
  socket: string;
  exportName: string;
  proxyPid: number;
}

/**
 * The allocation of one disk of the point as nbdkit's extentlist filter reads it (`offset length [hole,zero]`).
 * qemu's stream job asks for the allocation of every 512 KiB it copies; answered across the network by the
 * hub's qemu-nbd those answers cost about as much as the data itself (docs/benchmarks.md, restore-vm), answered
 * from this list they cost nothing. The point never changes, so the list read once stays true.
 */
export function extentList(extents: readonly Extent[]): string {
  return extents.map((e) => `${e.offset} ${e.length}${e.flags & NBD_STATE_HOLE ? ' hole,zero' : e.flags & NBD_STATE_ZERO ? ' zero' : ''}\n`).join('');
}

async function writeExtentList(file: string, host: string, d: RestoreStartRequest['disks'][number]): Promise<void> {
  const client = await openNbd({ transport: 'tcp', host, port: d.nbd.port, exportName: d.nbd.exportName }, { startTls: pskStartTls(d.nbd.psk), metaContexts: [BASE_ALLOCATION] });
  try {
    const map = await client.blockStatusAll(0, client.size, [BASE_ALLOCATION]);
    await writeFile(file, extentList(map.get(BASE_ALLOCATION)!), { mode: 0o600 });
  } finally {
    await client.close().catch(() => undefined);
  }
}

/**
 * libvirt cannot hand qemu a pre-shared key for an NBD backing, so each disk's backing is a local nbdkit that
 * reads the hub's TLS-PSK export and serves it, read-only, on a Unix socket only this host can reach. Its
 * retry filter holds requests while the hub is away (restarted, the network cut) and reconnects, so the guest's
 * reads wait instead of failing. The proxies run as daemons: they outlive an agent restart, whose journal names them.
 */
export async function startInstantDisks(
  dir: string,
  disks: RestoreStartRequest['disks'],
  host: string,
  log: (level: 'warn', message: string) => void,
  overlayOf: (diskId: string) => string = (diskId) => join(dir, `${diskId}.overlay.qcow2`),
): Promise<InstantDisk[]> {
  // searchable, not listable: libvirt's qemu user must reach the sockets, nobody needs to find them
  await mkdir(dir, { recursive: true, mode: 0o711 });
  await chmod(dir, 0o711);
  const out: InstantDisk[] = [];
  try {
    for (const d of disks) out.push(await startInstantDisk(dir, d, host, log, overlayOf(d.diskId)));
  } catch (error) {
    // the journal names the proxies only once all run: the ones already started go now
    await stopProxies(dir, out.map((o) => o.proxyPid));
    throw error;
  }
  return out;
}

async function startInstantDisk(dir: string, d: RestoreStartRequest['disks'][number], host: string, log: (level: 'warn', message: string) => void, overlay: string): Promise<InstantDisk> {
  const keys = join(dir, `${d.diskId}.psk`);
  await writeFile(keys, `${d.nbd.psk.identity}:${d.nbd.psk.key}\n`, { mode: 0o600 });
  const socket = await socketPath(dir, d.diskId);
  const logFile = join(dir, `${d.diskId}.nbdkit.log`);
  const extents = join(dir, `${d.diskId}.extents`);
  await writeExtentList(extents, host, d);
  const pidFile = join(dir, `${d.diskId}.nbdkit.pid`);
  // Not -f: a foreground nbdkit dies with the process that started it (SIGTERM from the dying agent, seen with
  // nbdkit 1.32), and the guest's disk with it. Daemonized it is init's child; its startup errors still reach the log.
  const launcher = ChildProcessHandle.spawn(
    'nbdkit',
    ['-r', '-U', socket, '-P', pidFile, '--filter=extentlist', '--filter=retry', 'nbd', `extentlist=${extents}`, `hostname=${host}`, `port=${d.nbd.port}`, `export=${d.nbd.exportName}`, 'tls=require', `tls-psk=${keys}`, `tls-username=${d.nbd.psk.identity}`, 'retry=5', 'retries=100000', 'retry-delay=1', 'retry-exponential=no'],
    { logFile, detached: false },
  );
  if (launcher.spawnError) throw new Error(`nbdkit could not be started: ${(await launcher.spawnError).message} (Debian package nbdkit)`);
  // it exits once it has forked the daemon, which then writes its pid file and binds the socket
  let timer: NodeJS.Timeout | undefined;
  const launched = await Promise.race([launcher.exited, new Promise<null>((r) => (timer = setTimeout(r, 10_000, null)))]).finally(() => clearTimeout(timer));
  let proxyPid = 0;
  for (let i = 0; launched?.code === 0 && i < 200; i++) {
    proxyPid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
    if (proxyPid && (await stat(socket).then(() => true, () => false))) break;
    proxyPid = 0;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!proxyPid) {
    if (!launched) await terminateProcess(launcher, 1000, 'nbdkit');
    throw new Error(`the NBD proxy of ${d.diskId} did not start: ${readLogTail(logFile).trim() || `exit ${JSON.stringify(launched)}`}`);
  }
  await chmod(socket, 0o666);
  try {
    await runQemuImg(['create', '-q', '-f', 'qcow2', '-u', '-b', `nbd+unix:///${d.nbd.exportName}?socket=${socket}`, '-F', 'raw', overlay, String(d.virtualSize)]);
  } catch (error) {
    await stopProxies(dir, [proxyPid]);
    throw error;
  }
  if (!signalled(proxyPid, 0)) log('warn', `the NBD proxy of ${d.diskId} exited: ${readLogTail(logFile).trim()}`);
  return { diskId: d.diskId, overlay, socket, exportName: d.nbd.exportName, proxyPid };
}


/**
 * A short dir of the proxy dir's own under the system's temp dir, named by a hash of it: where its sockets go when
 * the proxy dir is too deep for them (an agent dir far down a tree). Removed with the proxy dir.
 */
export function shortSocketDir(dir: string): string {
  return join(tmpdir(), `sendense-proxy-${createHash('sha256').update(dir).digest('hex').slice(0, 16)}`);
}

/** `<dir>/<diskId>.sock`, or a name in shortSocketDir when that is longer than a socket's path may be. */
async function socketPath(dir: string, diskId: string): Promise<string> {
  const beside = join(dir, `${diskId}.sock`);
  if (Buffer.byteLength(beside) <= MAX_SOCKET_PATH) return beside;
  const short = shortSocketDir(dir);
  const socket = join(short, `${createHash('sha256').update(diskId).digest('hex').slice(0, 16)}.sock`);
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) throw new Error(`no Unix socket path for the NBD proxy of ${diskId} fits in ${MAX_SOCKET_PATH} bytes: ${beside} is too long, and so is ${socket} (TMPDIR)`);
  // searchable, not listable, as the proxy dir
  await mkdir(short, { recursive: true, mode: 0o711 });
  await chmod(short, 0o711);
  return socket;
}

/** Stops the proxies (by pid: an adopted one is not our child; a pid now running anything else is left alone) and removes the overlays, sockets and keys. */
export async function stopInstantDisks(dir: string, proxyPids: number[]): Promise<void> {
  await stopProxies(dir, proxyPids);
  await rm(dir, { recursive: true, force: true });
  await rm(shortSocketDir(dir), { recursive: true, force: true });
}

async function stopProxies(dir: string, proxyPids: number[]): Promise<void> {
  // the journal names the proxies once every disk's runs: those of an agent killed before that are found by their files
  const found = processesWithArgument((word) => word.startsWith(`${dir}/`)).map((p) => p.pid);
  for (const pid of new Set([...proxyPids, ...found])) {
    const argv = readCmdline(pid);
    if (!argv || !argv[0]?.endsWith('nbdkit') || !argv.some((a) => a.startsWith(`${dir}/`))) continue;
    // SIGTERM, and SIGKILL when it has not gone within 2 s (its retry filter may be waiting on the hub)
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      if (!signalled(pid, signal)) break;
      let gone = false;
      for (let i = 0; i < 100 && !gone; i++) {
        gone = !signalled(pid, 0);
        if (!gone) await new Promise((r) => setTimeout(r, 20));
      }
      if (gone) break;
    }
  }
}

/** Sends `signal` (0: only asks whether the process still runs); false when there is no such process (or only its zombie). */
function signalled(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, signal);
  } catch {
    return false;
  }
  const state = readProcStat(pid)?.state;
  return state !== undefined && state !== 'Z' && state !== 'X';
}
