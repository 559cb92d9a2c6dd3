import type { Writable } from 'node:stream';
import { option } from '../../config/cli-args';
import { HubApi } from '../hub-api';
import { DiskLine, formatBytes, ProgressDisplay, progressLine } from '../progress-bar';

export const RESTORE_VM_USAGE = `  sendense restore vm RESTORE_POINT --agent AGENT (--as NAME [--storage-dir DIR] [--start | --instant] | --replace)
                   [--memory MIB --vcpus N] [--force] [--no-wait]
                                                           restore the whole VM through the agent on its host: as a new
                                                           domain NAME (--instant: running at once on the hub's data
                                                           while it is copied), or into the shut-off original (--replace)
  sendense restore drill RESTORE_POINT --agent AGENT [--timeout SECONDS]
                                                           boot the point on the agent's host without network, check it
                                                           answers, remove it`;

const FLAGS = new Set(['--start', '--instant', '--replace', '--force', '--no-wait']);
const VALUED = new Set(['--agent', '--as', '--storage-dir', '--memory', '--vcpus']);

/** `sendense restore vm`: requests the restore and, unless --no-wait, draws its disks' progress until it ends. */
export async function restoreVmCommand(args: string[], env: NodeJS.ProcessEnv, io: { stdout: Writable; stderr: Writable }): Promise<number> {
  const positional = args.filter((a, i) => !a.startsWith('--') && !VALUED.has(args[i - 1]));
  const unknown = args.filter((a) => a.startsWith('--') && !FLAGS.has(a) && !VALUED.has(a));
  if (unknown.length || positional.length !== 1 || !option(args, '--agent') || !option(args, '--as') === !args.includes('--replace') || (args.includes('--instant') && args.includes('--replace'))) {
    io.stderr.write(`usage:\n${RESTORE_VM_USAGE}\n`);
    return 2;
  }
  const api = new HubApi(env);
  const [restorePointId] = positional;
  const point = await api.call('GET', `/api/v1/restore-points/${encodeURIComponent(restorePointId)}`);
  const memory = option(args, '--memory');
  const vcpus = option(args, '--vcpus');
  const body = {
    restorePointId,
    agentId: option(args, '--agent'),
    mode: args.includes('--instant') ? 'instant' : 'full',
    target: args.includes('--replace') ? { kind: 'replace', vmId: point.vmId } : { kind: 'new-domain', name: option(args, '--as'), ...(option(args, '--storage-dir') ? { storageDir: option(args, '--storage-dir') } : {}), start: args.includes('--start') },
    ...(memory || vcpus ? { definition: { memoryMiB: Number(memory), vcpus: Number(vcpus) } } : {}),
    ...(args.includes('--force') ? { force: true } : {}),
  };
  const { restoreId } = await api.call('POST', '/api/v1/restores', body);
  io.stdout.write(`restore ${restoreId} of ${restorePointId} requested\n`);
  return args.includes('--no-wait') ? 0 : follow(api, restoreId, io);
}

/** `sendense restore drill`: boots the point on the agent's host, waits for the verdict. */
export async function restoreDrillCommand(args: string[], env: NodeJS.ProcessEnv, io: { stdout: Writable; stderr: Writable }): Promise<number> {
  const positional = args.filter((a, i) => !a.startsWith('--') && !['--agent', '--timeout'].includes(args[i - 1]));
  const timeout = option(args, '--timeout');
  if (positional.length !== 1 || !option(args, '--agent') || args.some((a) => a.startsWith('--') && !['--agent', '--timeout'].includes(a))) {
    io.stderr.write(`usage:\n${RESTORE_VM_USAGE}\n`);
    return 2;
  }
  const api = new HubApi(env);
  const { restoreId } = await api.call('POST', `/api/v1/restore-points/${encodeURIComponent(positional[0])}/drill`, { agentId: option(args, '--agent'), ...(timeout ? { timeoutSeconds: Number(timeout) } : {}) });
  io.stdout.write(`drill ${restoreId} of ${positional[0]} requested\n`);
  return follow(api, restoreId, io);
}

/** Draws the restore's progress until it ends; its verdict on stdout, exit 0 only when it completed (a drill: passed). */
async function follow(api: HubApi, restoreId: string, io: { stdout: Writable; stderr: Writable }): Promise<number> {
  const display = new ProgressDisplay(io.stderr as NodeJS.WritableStream);
  for (;;) {
    const r = await api.call('GET', `/api/v1/restores/${restoreId}`);
    const ended = r.status !== 'running';
    display.draw([r.phase, ...(r.disks as DiskLine[]).map(progressLine)], ended);
    if (r.status === 'completed' && r.drill) {
      io.stdout.write(`drill passed: the guest answered ${(r.drill.bootMs / 1000).toFixed(1)} s after its domain was created\n`);
      return 0;
    }
    if (r.status === 'completed') {
      const bytes = (r.disks as DiskLine[]).reduce((n, d) => n + d.bytesDone, 0);
      io.stdout.write(`completed: domain ${r.domain.name} (${r.domain.uuid})${r.domain.started ? ' started' : ''}, ${formatBytes(bytes)} restored in ${(r.durationMs / 1000).toFixed(1)} s\n`);
      return 0;
    }
    if (ended) {
      io.stdout.write(`${r.status}: ${r.error ?? ''}\n`);
      for (const d of r.damaged ?? []) io.stdout.write(`  damaged: disk ${d.diskId} offset ${d.offset} length ${d.length} expected ${d.expected} read ${d.actual}\n`);
      return 1;
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}
