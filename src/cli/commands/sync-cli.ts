import type { Writable } from 'node:stream';
import { HubApi } from '../hub-api';
import { formatBytes } from '../progress-bar';
import { option } from '../../config/cli-args';
import type { RemoteRecord } from '../../sync/queries/remotes.query';
import type { SyncJobRecord, SyncRunRecord } from '../../sync/queries/sync-jobs.query';

export const REMOTE_USAGE = `usage:
  sendense remote add --name NAME --url ssh://HOST[:PORT] --token TOKEN --fingerprint SHA256:...
                                            register a hub to pull restore points from: its SSH endpoint, a token it
                                            issued with role sync, its host key as its GET /api/v1/identity states it
  sendense remote list
`;

export const SYNC_USAGE = `usage:
  sendense sync add --remote ID --repository ID [--remote-repository ID] [--vm ID]... [--schedule CRON [--time-zone TZ]]
                    [--max-rate MiB]
                                            a job pulling the remote's restore points into a repository here
  sendense sync run JOB [--no-wait]         run it now and show the run until it ends (exit 1 when it failed)
  sendense sync list
`;

type Command = (args: string[], env: NodeJS.ProcessEnv, out: Writable) => Promise<number>;

function required(args: string[], name: string): string {
  const value = option(args, name);
  if (!value) throw new Error(`${name} is required`);
  return value;
}

/** Every value given for a repeatable option (`--vm a --vm b`). */
function all(args: string[], name: string): string[] {
  return args.flatMap((arg, i) => (arg === name && args[i + 1] !== undefined ? [args[i + 1]] : []));
}

function runLine(run: SyncRunRecord | null): string {
  if (!run) return 'never ran';
  const what = `${run.synced.length} point(s) copied${run.alreadyHeld !== null ? `, ${run.alreadyHeld} already here` : ''}${run.bytesReceived !== null ? `, ${formatBytes(run.bytesReceived)} received` : ''}`;
  if (run.status === 'running') {
    const p = run.progress?.restorePointId === run.restorePointId ? run.progress : null;
    const copying = p ? `, copying ${p.restorePointId} ${p.diskId}: ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesPlanned)} at ${formatBytes(p.rate)}/s` : run.restorePointId ? `, copying ${run.restorePointId}` : '';
    return `running since ${new Date(run.startedAt).toISOString()}${copying}`;
  }
  const refused = (run.refused ?? []).map((r) => `\n  refused ${r.restorePointId} (VM ${r.vmId}): ${r.reason}`).join('');
  return `${run.status} ${new Date(run.finishedAt ?? run.startedAt).toISOString()}: ${what}${run.reason ? `; ${run.reason}` : ''}${refused}`;
}

export const REMOTE_COMMANDS: Record<string, Command> = {
  add: async (args, env, out) => {
    const remote = await new HubApi(env).call<RemoteRecord>('POST', '/api/v1/remotes', {
      name: required(args, '--name'),
      url: required(args, '--url'),
      token: required(args, '--token'),
      fingerprint: required(args, '--fingerprint'),
    });
    out.write(`${remote.remoteId}  ${remote.name}  ${remote.url}  ${remote.fingerprint}\n`);
    return 0;
  },
  list: async (_args, env, out) => {
    for (const r of await new HubApi(env).call<RemoteRecord[]>('GET', '/api/v1/remotes')) out.write(`${r.remoteId}  ${r.name}  ${r.url}  ${r.fingerprint}\n`);
    return 0;
  },
};

export const SYNC_COMMANDS: Record<string, Command> = {
  add: async (args, env, out) => {
    const rate = option(args, '--max-rate');
    const vms = all(args, '--vm');
    const job = await new HubApi(env).call<SyncJobRecord>('POST', '/api/v1/sync-jobs', {
      remoteId: required(args, '--remote'),
      repositoryId: required(args, '--repository'),
      ...(option(args, '--remote-repository') ? { remoteRepositoryId: option(args, '--remote-repository') } : {}),
      ...(vms.length ? { vms } : {}),
      ...(option(args, '--schedule') ? { schedule: option(args, '--schedule') } : {}),
      ...(option(args, '--time-zone') ? { timeZone: option(args, '--time-zone') } : {}),
      // anything but a number goes as given, for the hub to refuse with its reason
      ...(rate !== undefined ? { maxBytesPerSecond: /^\d+(\.\d+)?$/.test(rate) ? Math.round(Number(rate) * 1048576) : rate } : {}),
    });
    out.write(`sync job ${job.syncJobId}\n`);
    return 0;
  },
  run: async (args, env, out) => {
    const [jobId] = args;
    if (!jobId || jobId.startsWith('--')) throw new Error('sync run needs the sync job id');
    const api = new HubApi(env);
    const { runId } = await api.call<{ runId: string }>('POST', `/api/v1/sync-jobs/${encodeURIComponent(jobId)}/run`);
    out.write(`sync run ${runId}\n`);
    if (args.includes('--no-wait')) return 0;
    let shown = '';
    for (;;) {
      const run = (await api.call<SyncJobRecord>('GET', `/api/v1/sync-jobs/${encodeURIComponent(jobId)}`)).lastRun;
      const line = runLine(run);
      if (line !== shown) out.write(`${line}\n`);
      shown = line;
      if (run?.runId === runId && run.status !== 'running') return run.status === 'completed' ? 0 : run.status === 'completed-with-warnings' ? 3 : 1;
      await new Promise((r) => setTimeout(r, 500));
    }
  },
  list: async (_args, env, out) => {
    for (const j of await new HubApi(env).call<SyncJobRecord[]>('GET', '/api/v1/sync-jobs')) {
      out.write(`${j.syncJobId}  remote ${j.remoteId} -> repository ${j.repositoryId}${j.schedule ? `  ${j.schedule}${j.timeZone ? ` ${j.timeZone}` : ''}` : ''}  ${runLine(j.lastRun)}\n`);
    }
    return 0;
  },
};

/** `sendense remote ...` and `sendense sync ...`: the word after them picks the command; a wrong one prints the usage. */
export function dispatch(table: Record<string, Command>, usage: string): (args: string[], env: NodeJS.ProcessEnv, out?: Writable) => Promise<number> {
  return async (args, env, out = process.stdout) => {
    const [what, ...rest] = args;
    if (what === undefined || !Object.hasOwn(table, what)) {
      process.stderr.write(usage);
      return 2;
    }
    return table[what](rest, env, out);
  };
}

export const remoteCommand = dispatch(REMOTE_COMMANDS, REMOTE_USAGE);
export const syncCommand = dispatch(SYNC_COMMANDS, SYNC_USAGE);
