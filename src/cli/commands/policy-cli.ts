import type { Writable } from 'node:stream';
import { HubApi } from '../hub-api';
import { option } from '../../config/cli-args';

export const POLICY_USAGE = `usage:
  sendense policy add --name NAME --repository ID --cron "m h dom mon dow" [--timezone TZ] [--catch-up once|skip]
                      (--vm ID[,ID...] | --name-pattern GLOB | --agent ID)... [--full-every N] --rpo-hours H
                      [--keep-last N] [--keep-hourly N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N]
                      [--keep-yearly N] [--disabled] [--confirm-prune]
                      [--drill-cron "m h dom mon dow" [--drill-agent ID] [--drill-timeout SECONDS]]
  sendense policy list
  sendense policy show POLICY
  sendense policy edit POLICY [any option of add; --enabled or --disabled; --no-drill]   changes only what is given
  sendense policy run POLICY                                                 back up every VM of it now (exit 1 when every VM was skipped)
  sendense policy remove POLICY                                              its restore points stay
The cron may have a leading seconds field; the time zone defaults to UTC. With --drill-cron the newest
point of each VM is booted as a recovery drill at every slot of that calendar (on --drill-agent's host,
else the VM's own agent's). Rules that would prune more than half of a VM's points at once (and more than the
policy's rules so far) are refused unless --confirm-prune is given.
`;

interface Policy {
  policyId: string;
  name: string;
  vms: { ids?: string[]; namePattern?: string; agentId?: string };
  repositoryId: string;
  schedule: { cron: string; timezone: string; catchUp: 'once' | 'skip' };
  fullEvery: number | null;
  retention: Record<string, number>;
  rpoHours: number;
  enabled: boolean;
  drill: { cron: string; agentId?: string; timeoutSeconds: number } | null;
  lastSlot: string | null;
}

const RETENTION: [string, string][] = [
  ['--keep-last', 'keepLast'],
  ['--keep-hourly', 'keepHourly'],
  ['--keep-daily', 'keepDaily'],
  ['--keep-weekly', 'keepWeekly'],
  ['--keep-monthly', 'keepMonthly'],
  ['--keep-yearly', 'keepYearly'],
];

/** Numbers stay strings when they are not numbers, so the hub's validation names the bad option. */
const num = (v: string | undefined) => (v === undefined ? undefined : Number.isFinite(Number(v)) ? Number(v) : v);

/** The definition PUT and POST take: the options given over `base` (the current policy for edit). */
function definitionFrom(args: string[], base: Partial<Policy>): Record<string, unknown> {
  const vms = { ...base.vms };
  const ids = option(args, '--vm');
  if (ids !== undefined) vms.ids = ids.split(',').filter(Boolean);
  if (option(args, '--name-pattern') !== undefined) vms.namePattern = option(args, '--name-pattern');
  if (option(args, '--agent') !== undefined) vms.agentId = option(args, '--agent');
  const retention = { ...base.retention };
  for (const [flag, key] of RETENTION) if (option(args, flag) !== undefined) retention[key] = num(option(args, flag)) as number;
  const fullEvery = num(option(args, '--full-every')) ?? base.fullEvery ?? undefined;
  const enabled = args.includes('--disabled') ? false : args.includes('--enabled') ? true : (base.enabled ?? true);
  const drill = args.includes('--no-drill') ? null : { ...base.drill };
  if (drill && option(args, '--drill-cron') !== undefined) drill.cron = option(args, '--drill-cron')!;
  if (drill && option(args, '--drill-agent') !== undefined) drill.agentId = option(args, '--drill-agent');
  if (drill && option(args, '--drill-timeout') !== undefined) drill.timeoutSeconds = num(option(args, '--drill-timeout')) as number;
  return {
    name: option(args, '--name') ?? base.name,
    vms,
    repositoryId: option(args, '--repository') ?? base.repositoryId,
    schedule: {
      cron: option(args, '--cron') ?? base.schedule?.cron,
      timezone: option(args, '--timezone') ?? base.schedule?.timezone ?? 'UTC',
      catchUp: option(args, '--catch-up') ?? base.schedule?.catchUp ?? 'once',
    },
    ...(fullEvery === undefined || fullEvery === null ? {} : { fullEvery }),
    retention,
    rpoHours: num(option(args, '--rpo-hours')) ?? base.rpoHours,
    enabled,
    ...(drill && Object.keys(drill).length ? { drill } : {}),
    ...(args.includes('--confirm-prune') ? { confirmPrune: true } : {}),
  };
}

function summaryLine(p: Policy): string {
  const vms = [p.vms.ids?.length ? `ids ${p.vms.ids.join(',')}` : null, p.vms.namePattern ? `name ${p.vms.namePattern}` : null, p.vms.agentId ? `agent ${p.vms.agentId}` : null].filter(Boolean).join(' and ');
  const keep = RETENTION.filter(([, k]) => p.retention[k] !== undefined).map(([, k]) => `${k}=${p.retention[k]}`).join(' ');
  return `${p.policyId}  ${p.name}  ${p.enabled ? 'enabled' : 'disabled'}  "${p.schedule.cron}" ${p.schedule.timezone} (catch-up ${p.schedule.catchUp})  vms: ${vms}  keep: ${keep}  rpo ${p.rpoHours}h${p.fullEvery ? `  full every ${p.fullEvery}` : ''}${p.drill ? `  drill "${p.drill.cron}"${p.drill.agentId ? ` on ${p.drill.agentId}` : ''}` : ''}  last slot ${p.lastSlot ?? '-'}\n`;
}

/** What a policy command gets: the arguments after its word, the POLICY among them, where to write, the hub. */
interface PolicyCall {
  args: string[];
  id: string | undefined;
  out: Writable;
  api: () => HubApi;
  usage: () => number;
}

/** The `sendense policy` commands, by the word after `policy`. */
export const POLICY_COMMANDS: Record<string, (call: PolicyCall) => Promise<number>> = {
  add: async ({ args, out, api }) => {
    out.write(summaryLine(await api().call<Policy>('POST', '/api/v1/policies', definitionFrom(args, {}))));
    return 0;
  },
  list: async ({ out, api }) => {
    for (const p of await api().call<Policy[]>('GET', '/api/v1/policies')) out.write(summaryLine(p));
    return 0;
  },
  show: async ({ id, out, api, usage }) => {
    if (!id) return usage();
    out.write(JSON.stringify(await api().call<Policy>('GET', `/api/v1/policies/${id}`), null, 2) + '\n');
    return 0;
  },
  edit: async ({ args, id, out, api, usage }) => {
    if (!id) return usage();
    const current = await api().call<Policy>('GET', `/api/v1/policies/${id}`);
    out.write(summaryLine(await api().call<Policy>('PUT', `/api/v1/policies/${id}`, definitionFrom(args.slice(1), current))));
    return 0;
  },
  run: async ({ id, out, api, usage }) => {
    if (!id) return usage();
    const run = await api().call<{ slot: string; jobs: { vmId: string; jobId: string; status: string; reason: string | null }[] }>('POST', `/api/v1/policies/${id}/run`);
    if (!run.jobs.length) out.write('the policy selects no VM\n');
    for (const j of run.jobs) out.write(`${j.vmId}  ${j.status === 'requested' ? `backup job ${j.jobId}` : `skipped: ${j.reason}`}\n`);
    // a run that backed up none of the VMs it selects did not do what was asked: a script sees it by the exit code
    return run.jobs.length && !run.jobs.some((j) => j.status === 'requested') ? 1 : 0;
  },
  remove: async ({ id, out, api, usage }) => {
    if (!id) return usage();
    await api().call('DELETE', `/api/v1/policies/${id}`);
    out.write(`policy ${id} removed; its restore points stay\n`);
    return 0;
  },
};

/** `sendense policy ...`: exit code 0, or 2 for a usage error. */
export async function policyCommand(args: string[], env: NodeJS.ProcessEnv, out: Writable = process.stdout): Promise<number> {
  const [what, ...rest] = args;
  const usage = () => {
    process.stderr.write(POLICY_USAGE);
    return 2;
  };
  if (what === undefined || !Object.hasOwn(POLICY_COMMANDS, what)) return usage();
  const id = rest[0] && !rest[0].startsWith('--') ? rest[0] : undefined;
  return POLICY_COMMANDS[what]({ args: rest, id, out, api: () => new HubApi(env), usage });
}
