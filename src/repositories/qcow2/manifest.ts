import { promises as fs } from 'node:fs';
import { isAbsolute, join, normalize, posix } from 'node:path';
import { chunkPointFile, isChunkPointFile } from '../chunks/chunk-points';
import { writeFileAtomic } from './durable-fs';

export const MANIFEST_SCHEMA_VERSION = 1;

export type RestorePointType = 'full' | 'incremental';

export interface ManifestDisk {
  diskId: string;
  /** Relative to the repository root, e.g. "vm-1/disk-0/rp-2.qcow2". */
  file: string;
  /** Relative to the repository root; null when this disk's file has no backing file. */
  parentFile: string | null;
  virtualSize: number;
  /** File length when the point was recorded; a shorter file on disk means it was truncated. */
  fileBytes: number;
  /** Source-side change tracking reference (bitmap name, VMware change id) for the next incremental. */
  changeRef: string | null;
  /** The disk's block digest file (relative to the repository root) and its SHA-256; absent on points backed up without digests. */
  digests?: { file: string; sha256: string; blocks: number } | null;
}

export interface RestorePointManifest {
  schemaVersion: typeof MANIFEST_SCHEMA_VERSION;
  restorePointId: string;
  vmId: string;
  createdAt: string;
  parentId: string | null;
  type: RestorePointType;
  disks: ManifestDisk[];
  /** The VM's configuration at the point's instant (domain XML, UEFI variables, TPM state); absent when the source recorded none. */
  configuration?: { file: string; sha256: string; nvram: boolean; tpm: boolean } | null;
  /** Disks of the VM holding data the point does not (its source could not read them); absent when none. */
  disksLeftOut?: { diskId: string; reason: string }[];
}

export class ManifestError extends Error {
  constructor(readonly source: string, readonly problems: string[]) {
    super(`invalid restore point manifest ${source}: ${problems.join('; ')}`);
    this.name = 'ManifestError';
  }
}

export interface ManifestListing {
  manifests: RestorePointManifest[];
  /** One unreadable manifest must not hide the others from an operator; they are reported here. */
  invalid: { file: string; error: string }[];
}

// Ids become path segments, so they must not be able to climb out of the repository.
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function manifestPath(repoRoot: string, vmId: string, restorePointId: string): string {
  return join(repoRoot, vmId, 'manifests', `${restorePointId}.json`);
}

export async function writeManifest(repoRoot: string, manifest: RestorePointManifest): Promise<string> {
  const problems = manifestProblems(manifest);
  if (problems.length) throw new ManifestError(`${manifest?.vmId}/${manifest?.restorePointId}`, problems);
  const file = manifestPath(repoRoot, manifest.vmId, manifest.restorePointId);
  await fs.mkdir(join(repoRoot, manifest.vmId, 'manifests'), { recursive: true });
  await writeFileAtomic(file, JSON.stringify(manifest, null, 2) + '\n');
  return file;
}

export async function readManifest(file: string): Promise<RestorePointManifest> {
  const text = await fs.readFile(file, 'utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ManifestError(file, [`not JSON (${(error as Error).message})`]);
  }
  const problems = manifestProblems(parsed);
  const expectedId = posix.basename(file.replace(/\\/g, '/'), '.json');
  if (!problems.length && (parsed as RestorePointManifest).restorePointId !== expectedId) {
    problems.push(`restorePointId "${(parsed as RestorePointManifest).restorePointId}" does not match the file name "${expectedId}.json"`);
  }
  if (problems.length) throw new ManifestError(file, problems);
  return parsed as RestorePointManifest;
}

/** Oldest first (createdAt, then id). Files starting with "." are temp files of interrupted writes. */
export async function listManifests(repoRoot: string, vmId?: string): Promise<ManifestListing> {
  const vmIds = vmId !== undefined ? [vmId] : await subdirectories(repoRoot);
  const listing: ManifestListing = { manifests: [], invalid: [] };
  for (const vm of vmIds) {
    const dir = join(repoRoot, vm, 'manifests');
    const names = await readdirOrEmpty(dir);
    for (const name of names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).sort()) {
      const file = join(dir, name);
      try {
        const manifest = await readManifest(file);
        if (manifest.vmId !== vm) throw new ManifestError(file, [`vmId "${manifest.vmId}" does not match its directory "${vm}"`]);
        listing.manifests.push(manifest);
      } catch (error) {
        listing.invalid.push({ file, error: (error as Error).message });
      }
    }
  }
  listing.manifests.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.restorePointId.localeCompare(b.restorePointId));
  return listing;
}

/** Returns every problem at once so an operator can fix a hand-edited manifest in one go. */
export function manifestProblems(value: unknown): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return ['not a JSON object'];
  const m = value as Record<string, unknown>;
  const problems: string[] = [];
  if (m.schemaVersion !== MANIFEST_SCHEMA_VERSION) problems.push(`unsupported schemaVersion ${JSON.stringify(m.schemaVersion)} (expected ${MANIFEST_SCHEMA_VERSION})`);
  for (const key of ['restorePointId', 'vmId'] as const) {
    if (typeof m[key] !== 'string' || !ID_PATTERN.test(m[key] as string)) problems.push(`${key} must match ${ID_PATTERN}, got ${JSON.stringify(m[key])}`);
  }
  if (typeof m.createdAt !== 'string' || Number.isNaN(Date.parse(m.createdAt))) problems.push(`createdAt must be an ISO date, got ${JSON.stringify(m.createdAt)}`);
  if (m.type !== 'full' && m.type !== 'incremental') problems.push(`type must be "full" or "incremental", got ${JSON.stringify(m.type)}`);
  if (m.parentId !== null && (typeof m.parentId !== 'string' || !ID_PATTERN.test(m.parentId))) problems.push(`parentId must be null or an id, got ${JSON.stringify(m.parentId)}`);
  if (m.type === 'full' && m.parentId !== null) problems.push('a full restore point has no parentId');
  if (m.type === 'incremental' && m.parentId === null) problems.push('an incremental restore point needs a parentId');
  if (!Array.isArray(m.disks) || m.disks.length === 0) {
    problems.push('disks must be a non-empty array');
    return problems;
  }
  const seen = new Set<string>();
  m.disks.forEach((disk, i) => problems.push(...diskProblems(disk, i, m, seen)));
  if (m.configuration !== undefined && m.configuration !== null) problems.push(...configurationProblems(m.configuration, m));
  if (m.disksLeftOut !== undefined && !(Array.isArray(m.disksLeftOut) && m.disksLeftOut.every((d) => typeof d?.diskId === 'string' && typeof d?.reason === 'string'))) {
    problems.push('disksLeftOut must list {diskId, reason} strings');
  }
  return problems;
}

function diskProblems(value: unknown, index: number, m: Record<string, unknown>, seen: Set<string>): string[] {
  const at = `disks[${index}]`;
  if (typeof value !== 'object' || value === null) return [`${at} is not an object`];
  const d = value as Record<string, unknown>;
  const problems: string[] = [];
  if (typeof d.diskId !== 'string' || !ID_PATTERN.test(d.diskId)) problems.push(`${at}.diskId must match ${ID_PATTERN}, got ${JSON.stringify(d.diskId)}`);
  else if (seen.has(d.diskId)) problems.push(`${at}.diskId "${d.diskId}" appears twice`);
  else seen.add(d.diskId);
  const fileProblem = repoRelativeProblem(d.file);
  if (fileProblem) problems.push(`${at}.file ${fileProblem}`);
  else if (typeof m.vmId === 'string' && typeof d.diskId === 'string' && typeof m.restorePointId === 'string' && isChunkPointFile(d.file as string)) {
    // a chunk point's index is named by its VM, point and disk (src/repositories/chunks/chunk-points.ts)
    const expected = chunkPointFile(m.vmId, d.diskId, m.restorePointId);
    if (d.file !== expected) problems.push(`${at}.file "${d.file}" is not ${expected}`);
  } else if (typeof m.vmId === 'string' && typeof d.diskId === 'string' && !(d.file as string).startsWith(`${m.vmId}/${d.diskId}/`)) {
    problems.push(`${at}.file "${d.file}" is not under ${m.vmId}/${d.diskId}/`);
  }
  if (d.parentFile !== null) {
    const parentProblem = repoRelativeProblem(d.parentFile);
    if (parentProblem) problems.push(`${at}.parentFile must be null or ${parentProblem.replace(/^must be /, '')}`);
    else if (d.parentFile === d.file) problems.push(`${at}.parentFile is the file itself`);
    if (m.type === 'full') problems.push(`${at}.parentFile must be null in a full restore point`);
  }
  if (!Number.isSafeInteger(d.virtualSize) || (d.virtualSize as number) <= 0) problems.push(`${at}.virtualSize must be a positive integer, got ${JSON.stringify(d.virtualSize)}`);
  if (!Number.isSafeInteger(d.fileBytes) || (d.fileBytes as number) < 0) problems.push(`${at}.fileBytes must be a non-negative integer, got ${JSON.stringify(d.fileBytes)}`);
  if (d.changeRef !== null && typeof d.changeRef !== 'string') problems.push(`${at}.changeRef must be a string or null, got ${JSON.stringify(d.changeRef)}`);
  if (d.digests !== undefined && d.digests !== null) problems.push(...digestsProblems(d.digests, at, m));
  return problems;
}

function digestsProblems(value: unknown, at: string, m: Record<string, unknown>): string[] {
  if (typeof value !== 'object' || value === null) return [`${at}.digests must be null or an object`];
  const g = value as Record<string, unknown>;
  const problems: string[] = [];
  const fileProblem = repoRelativeProblem(g.file);
  if (fileProblem) problems.push(`${at}.digests.file ${fileProblem}`);
  else if (typeof m.vmId === 'string' && !(g.file as string).startsWith(`${m.vmId}/manifests/`)) problems.push(`${at}.digests.file "${g.file}" is not under ${m.vmId}/manifests/`);
  if (typeof g.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(g.sha256)) problems.push(`${at}.digests.sha256 must be 64 hex digits`);
  if (!Number.isSafeInteger(g.blocks) || (g.blocks as number) < 0) problems.push(`${at}.digests.blocks must be a non-negative integer`);
  return problems;
}

function configurationProblems(value: unknown, m: Record<string, unknown>): string[] {
  if (typeof value !== 'object' || value === null) return ['configuration must be null or an object'];
  const c = value as Record<string, unknown>;
  const problems: string[] = [];
  const fileProblem = repoRelativeProblem(c.file);
  if (fileProblem) problems.push(`configuration.file ${fileProblem}`);
  else if (typeof m.vmId === 'string' && !(c.file as string).startsWith(`${m.vmId}/manifests/`)) problems.push(`configuration.file "${c.file}" is not under ${m.vmId}/manifests/`);
  if (typeof c.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(c.sha256)) problems.push('configuration.sha256 must be 64 hex digits');
  if (typeof c.nvram !== 'boolean' || typeof c.tpm !== 'boolean') problems.push('configuration.nvram and configuration.tpm must be booleans');
  return problems;
}

function repoRelativeProblem(value: unknown): string | null {
  if (typeof value !== 'string' || value === '') return `must be a non-empty path relative to the repository root, got ${JSON.stringify(value)}`;
  if (isAbsolute(value) || value.includes('\\')) return `must be relative to the repository root with "/" separators, got "${value}"`;
  if (normalize(value) !== value || value.split('/').includes('..')) return `must be a normalised path inside the repository, got "${value}"`;
  return null;
}

async function subdirectories(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}
