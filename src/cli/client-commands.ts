import { option } from '../config/cli-args';
import { HubApi } from './hub-api';
import { DiskLine, formatBytes, ProgressDisplay, progressLine } from './progress-bar';

/** The `repository`, `backup`, `restore-points` and `token` commands, by their two words; each gets the arguments after them. */
export const CLIENT_COMMANDS: Record<string, (args: string[], env: NodeJS.ProcessEnv) => Promise<void>> = {
  'repository add': repositoryAdd,
  'repository set': repositorySet,
  'repository list': repositoryList,
  'repository gc': repositoryGc,
  'backup start': backupStart,
  'backup list': backupList,
  'backup show': backupShow,
  'backup cancel': backupCancel,
  'restore-points list': restorePointsList,
  'restore-points delete': restorePointsDelete,
  'restore-points recycle-bin': restorePointsRecycleBin,
  'restore-points undelete': restorePointsUndelete,
  'restore-points purge': restorePointsPurge,
  'token rotate-admin': tokenRotateAdmin,
};

function required(args: string[], name: string): string {
  const value = option(args, name);
  if (!value) throw new Error(`${name} is required`);
  return value;
}

async function repositoryAdd(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const days = option(args, '--immutable-days');
  // anything but digits goes as given, for the hub to refuse with its reason
  const immutableDays = days === undefined ? {} : { immutableDays: /^\d+$/.test(days) ? Number(days) : days };
  const keyFile = option(args, '--key-file');
  const encryption = keyFile === undefined ? {} : { encryption: { keyFile } };
  const depth = option(args, '--max-chain-depth');
  const maxChainDepth = depth === undefined ? {} : { maxChainDepth: /^\d+$/.test(depth) ? Number(depth) : depth };
  const layoutOption = option(args, '--layout');
  const layout = layoutOption === undefined ? {} : { layout: layoutOption };
  const repo = await new HubApi(env).call('POST', '/api/v1/repositories', { name: required(args, '--name'), kind: 'local', path: required(args, '--path'), ...immutableDays, ...encryption, ...maxChainDepth, ...layout });
  const notes = [
    ...(repo.immutableDays ? [`points immutable for ${repo.immutableDays} day(s)`] : []),
    ...(repo.encryption ? [`encrypted with key ${repo.encryption.keyFingerprint}`] : []),
    repo.layout === 'chunks' ? 'chunk store: compressed, deduplicated' : `chains of at most ${repo.maxChainDepth} points`,
  ];
  process.stdout.write(`${repo.repositoryId}  ${repo.name}  ${repo.path}  ${freeSpace(repo.freeBytes)}${notes.map((n) => `  ${n}`).join('')}\n`);
}

/** Each repository with its space; a chunks repository with its saving as last measured. */
async function repositoryList(_args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const repos = (await new HubApi(env).call('GET', '/api/v1/repositories')) as RepositoryLine[];
  for (const r of repos) process.stdout.write(`${r.repositoryId}  ${r.name}  ${r.layout}  ${r.path}  ${freeSpace(r.freeBytes)}  ${r.restorePoints} point(s)${r.chunks ? `  ${savingOf(r.chunks)}` : ''}
`);
}

async function repositoryGc(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const [repositoryId] = args;
  if (!repositoryId || repositoryId.startsWith('--')) throw new Error('usage: sendense repository gc ID');
  const done = await new HubApi(env).call('POST', `/api/v1/repositories/${encodeURIComponent(repositoryId)}/gc`);
  process.stdout.write(`freed ${formatBytes(done.bytesFreed)} (${done.packsRemoved} pack(s) removed, ${done.packsRepacked} repacked) in ${done.durationMs} ms; ${formatBytes(done.space.storedBytes)} stored for ${formatBytes(done.space.logicalBytes)} protected\n`);
}

interface RepositoryLine {
  repositoryId: string;
  name: string;
  layout: string;
  path: string;
  freeBytes: number | null;
  restorePoints: number;
  chunks: { logicalBytes: number; storedBytes: number; garbageBytes: number; deduplication: number | null; compression: number | null; reduction: number | null } | null;
}

function savingOf(c: NonNullable<RepositoryLine['chunks']>): string {
  const x = (n: number | null) => (n === null ? '-' : `${n.toFixed(2)}x`);
  return `${formatBytes(c.storedBytes)} stored for ${formatBytes(c.logicalBytes)} protected: reduction ${x(c.reduction)} (deduplication ${x(c.deduplication)}, compression ${x(c.compression)}), ${formatBytes(c.garbageBytes)} garbage`;
}

/** Only what steers the backups to come may change; each option goes as given, for the hub to refuse with its reason. */
async function repositorySet(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const [repositoryId] = args;
  const depth = option(args, '--max-chain-depth');
  if (!repositoryId || repositoryId.startsWith('--') || depth === undefined) throw new Error('usage: sendense repository set ID --max-chain-depth N');
  const repo = await new HubApi(env).call('PATCH', `/api/v1/repositories/${encodeURIComponent(repositoryId)}`, { maxChainDepth: /^\d+$/.test(depth) ? Number(depth) : depth });
  process.stdout.write(`${repo.repositoryId}  ${repo.name}  chains of at most ${repo.maxChainDepth} points\n`);
}

async function backupStart(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const api = new HubApi(env);
  const { jobId } = await api.call('POST', '/api/v1/backups', { vmId: required(args, '--vm'), repositoryId: required(args, '--repository'), type: option(args, '--type') ?? 'auto' });
  process.stdout.write(`backup job ${jobId}\n`);
  if (args.includes('--wait')) await waitForJob(api, jobId);
}

/** Polls the job and redraws one progress line per disk until it ends; exit code 1 when it failed. */
async function waitForJob(api: HubApi, jobId: string): Promise<void> {
  const display = new ProgressDisplay();
  for (;;) {
    const job = await api.call('GET', `/api/v1/backups/${jobId}`);
    display.draw([`${job.phase}${job.type ? ` (${job.type}: ${job.typeReason})` : ''}`, ...(job.disks as DiskLine[]).map(progressLine)], job.status === 'completed' || job.status === 'failed');
    if (job.status === 'completed') {
      process.stdout.write(`completed: restore point ${job.restorePointId}, ${formatBytes(job.bytesWritten)} written\n`);
      for (const d of job.disksLeftOut ?? []) process.stdout.write(`warning: disk ${d.diskId} is not in the point: ${d.reason}\n`);
      return;
    }
    if (job.status === 'failed') {
      process.stdout.write(`failed in phase ${job.failedPhase}: ${job.error}\n`);
      process.exitCode = 1;
      return;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

async function backupList(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const query = new URLSearchParams();
  if (option(args, '--vm')) query.set('vmId', option(args, '--vm')!);
  if (option(args, '--status')) query.set('status', option(args, '--status')!);
  const { jobs } = await new HubApi(env).call('GET', `/api/v1/backups?${query}`);
  for (const j of jobs) process.stdout.write(`${j.jobId}  ${j.vmId.padEnd(12)} ${String(j.type ?? j.requestedType).padEnd(11)} ${j.phase.padEnd(12)} ${formatBytes(j.bytesWritten).padStart(10)}  ${j.requestedAt}${j.error ? `  ${j.error}` : ''}${lacking(j.disksLeftOut)}\n`);
}

async function backupShow(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const [jobId] = args;
  if (!jobId) throw new Error('usage: sendense backup show JOB');
  process.stdout.write(JSON.stringify(await new HubApi(env).call('GET', `/api/v1/backups/${jobId}`), null, 2) + '\n');
}

async function backupCancel(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const [jobId] = args;
  if (!jobId) throw new Error('usage: sendense backup cancel JOB');
  await new HubApi(env).call('POST', `/api/v1/backups/${jobId}/cancel`);
  process.stdout.write(`cancel requested for ${jobId}\n`);
}

async function restorePointsList(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const repo = option(args, '--repository');
  const points = await new HubApi(env).call('GET', `/api/v1/vms/${encodeURIComponent(required(args, '--vm'))}/restore-points${repo ? `?repositoryId=${repo}` : ''}`);
  for (const p of points) process.stdout.write(`${formatRestorePoint(p)}\n`);
}

function pointArgument(args: string[], command: string): string {
  const [id] = args;
  if (!id || id.startsWith('--')) throw new Error(`usage: sendense restore-points ${command} POINT`);
  return encodeURIComponent(id);
}

async function restorePointsDelete(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const id = pointArgument(args, 'delete');
  const answer = await new HubApi(env).call('DELETE', `/api/v1/restore-points/${id}`);
  process.stdout.write(answer.recycled ? `${answer.restorePointId} is in the recycle bin until ${answer.purgeAfter}; an admin can undelete it until then\n` : `${answer.restorePointId} deleted\n`);
}

async function restorePointsRecycleBin(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  if (args.length) throw new Error('usage: sendense restore-points recycle-bin');
  const points = await new HubApi(env).call('GET', '/api/v1/recycle-bin');
  for (const p of points) process.stdout.write(`${formatRestorePoint(p)}  vm=${p.vmId}  deleted ${p.recycled.at} by ${p.recycled.by}, purged after ${p.recycled.purgeAfter}\n`);
}

async function restorePointsUndelete(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const point = await new HubApi(env).call('POST', `/api/v1/restore-points/${pointArgument(args, 'undelete')}/undelete`);
  process.stdout.write(`${formatRestorePoint(point)}  undeleted\n`);
}

async function restorePointsPurge(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const { restorePointId } = await new HubApi(env).call('POST', `/api/v1/restore-points/${pointArgument(args, 'purge')}/purge`);
  process.stdout.write(`${restorePointId} purged: its files are removed\n`);
}

/** The new token goes to stdout alone (for a script to capture); what became of the file to stderr. */
async function tokenRotateAdmin(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  if (args.length) throw new Error('usage: sendense token rotate-admin');
  const { token, generation, file } = await new HubApi(env).call('POST', '/api/v1/tokens/admin/rotate');
  process.stdout.write(`${token}\n`);
  process.stderr.write(`admin token rotated (generation ${generation}): the old one no longer works on any hub sharing this database; ${file ? `the hub wrote the new one to ${file}` : 'the hub was started with SENDENSE_ADMIN_TOKEN: set it to the new token before its next start'}\n`);
}

export interface ListedRestorePoint {
  restorePointId: string;
  type: string;
  parentId: string | null;
  disks: { diskId: string; fileBytes: number }[];
  createdAt: string;
  consistency?: 'application' | 'crash' | null;
  consistencyReason?: string | null;
  freezeMs?: number | null;
  integrity?: 'verified' | 'unverified' | 'corrupt';
  status?: 'available' | 'deleting' | 'recycled';
  disksLeftOut?: { diskId: string; reason: string }[];
}

/** `  LACKS vdb (why)`: the disks of the VM a point or job does not hold, where an operator reads, or nothing. */
export function lacking(leftOut: { diskId: string; reason: string }[] | undefined): string {
  return leftOut?.length ? `  LACKS ${leftOut.map((d) => `${d.diskId} (${d.reason})`).join(', ')}` : '';
}

/** A filesystem's free space, or that it could not be measured (statfs failed: an NFS export gone, say), never "0 B". */
export function freeSpace(bytes: number | null | undefined): string {
  return bytes === null || bytes === undefined ? 'free space unknown' : `${formatBytes(bytes)} free`;
}

/** One line per point; what an operator restoring a database must know first is whether the guest was frozen for it. */
export function formatRestorePoint(p: ListedRestorePoint): string {
  const size = p.disks.reduce((n, d) => n + d.fileBytes, 0);
  const consistency =
    p.consistency === 'application' ? `  application-consistent (guest frozen ${p.freezeMs ?? '?'} ms)` :
    p.consistency === 'crash' ? `  crash-consistent: ${p.consistencyReason ?? 'no reason recorded'}` :
    '';
  // what would stop a restore from it comes first, where an operator choosing a point reads
  const warning = (p.integrity === 'corrupt' ? '  CORRUPT (a restore needs --force)' : p.status === 'deleting' ? '  BEING DELETED' : '') + lacking(p.disksLeftOut);
  return `${p.restorePointId}  ${p.type.padEnd(11)} parent=${p.parentId ?? '-'}  disks=${p.disks.map((d) => d.diskId).join(',')}  ${formatBytes(size)}  ${p.createdAt}${warning}${consistency}`;
}
