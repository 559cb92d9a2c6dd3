import { promises as fs } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { mapAtOnce } from '../../process';
import { exists } from './durable-fs';
import { RestorePointManifest } from './manifest';
import { check, info, type CheckResult, type ImageInfo } from './qemu-img';
import { checkQcow2 } from './qcow2-check';
import { readQcow2Header } from '../../qemu/qcow2-header';

export interface ChainLink {
  /** Relative to the repository root. */
  file: string;
  /** Relative to the repository root; null for the full point at the bottom of the chain. */
  parentFile: string | null;
  virtualSize?: number;
  /** Recorded file length; a shorter file is reported as truncated. */
  fileBytes?: number;
}

export interface ChainValidation {
  ok: boolean;
  problems: string[];
  /** Worth an operator's attention but the content is still readable (leaked clusters, grown files). */
  warnings: string[];
}

const CONCURRENCY = 4;

/** links run oldest to newest; every check runs on every link so one report lists all damage. */
export async function validateChain(repoRoot: string, links: readonly ChainLink[]): Promise<ChainValidation> {
  const problems: string[] = [];
  const warnings: string[] = [];
  links.forEach((link, i) => {
    if (i > 0 && link.parentFile !== links[i - 1].file) problems.push(`${link.file}: recorded parent ${link.parentFile ?? 'none'} is not the previous point ${links[i - 1].file}`);
  });
  // Each file's header is read and its tables checked in this process (checkFile): a verify runs this on every file
  // of a chain as long as retention lets it grow, and a qemu-img process costs more than the reading (docs/benchmarks.md,
  // chain). Where a file's layout is one this does not read, one qemu-img reads every header of the chain and has the
  // final word on whether qemu opens it whole; a chain it cannot open falls back to a look at each file, which says which one fails.
  const own = await mapAtOnce(links, CONCURRENCY, (link) => readQcow2Header(resolve(repoRoot, link.file)).catch(() => null));
  const chain = links.length && own.some((h) => h === null) ? await info(resolve(repoRoot, links[links.length - 1].file), { backingChain: true }).catch((error: Error) => error) : null;
  const headers = new Map<string, LinkHeader>(Array.isArray(chain) ? chain.map((image) => [resolve(image.filename), image]) : []);
  // a file whose header was read is there: its stat and the check that its child's backing file exists come from that read
  const opened = new Map<string, number>();
  links.forEach((link, i) => {
    const file = resolve(repoRoot, link.file);
    const header = own[i];
    if (!header) return;
    headers.set(file, { ...header, fullBackingFilename: header.backingFilename === null ? null : resolve(dirname(file), header.backingFilename) });
    opened.set(file, header.fileBytes);
  });
  const perLink = await mapAtOnce(links, CONCURRENCY, (link) => validateLink(repoRoot, link, headers.get(resolve(repoRoot, link.file)), opened));
  for (const result of perLink) {
    problems.push(...result.problems);
    warnings.push(...result.warnings);
  }
  if (problems.length === 0 && chain !== null) problems.push(...wholeChainProblems(repoRoot, links, chain as ImageInfo[] | Error));
  return { ok: problems.length === 0, problems, warnings };
}

/** The chain ending at restorePointId for one disk, oldest first, following recorded parentFile links. */
export function diskChainLinks(manifests: readonly RestorePointManifest[], restorePointId: string, diskId: string): ChainLink[] {
  const byFile = new Map<string, ChainLink>();
  let tip: ChainLink | undefined;
  for (const manifest of manifests) {
    const disk = manifest.disks.find((d) => d.diskId === diskId);
    if (!disk) continue;
    const link: ChainLink = { file: disk.file, parentFile: disk.parentFile, virtualSize: disk.virtualSize, fileBytes: disk.fileBytes };
    byFile.set(disk.file, link);
    if (manifest.restorePointId === restorePointId) tip = link;
  }
  if (!tip) throw new Error(`restore point ${restorePointId} has no disk ${diskId}`);
  const chain: ChainLink[] = [];
  for (let link: ChainLink | undefined = tip; link; link = link.parentFile ? byFile.get(link.parentFile) : undefined) {
    if (chain.includes(link)) throw new Error(`recorded chain for disk ${diskId} loops at ${link.file}`);
    chain.unshift(link);
    // A parent no manifest knows stays as the recorded parent of the oldest link; validateChain reports it.
  }
  return chain;
}

/** What the checks read of a file's header, from the file itself or from qemu-img. */
type LinkHeader = Pick<ImageInfo, 'virtualSize' | 'corrupt' | 'backingFilename' | 'fullBackingFilename' | 'backingFormat'>;

/** `opened`: the length of each file whose header this process read. */
async function validateLink(repoRoot: string, link: ChainLink, header: LinkHeader | undefined, opened: ReadonlyMap<string, number>): Promise<{ problems: string[]; warnings: string[] }> {
  const problems: string[] = [];
  const warnings: string[] = [];
  const file = resolve(repoRoot, link.file);
  const size = opened.get(file) ?? (await fs.stat(file).catch(() => null))?.size;
  if (size === undefined) return { problems: [`${link.file}: file is missing`], warnings };
  if (link.fileBytes !== undefined && size < link.fileBytes) problems.push(`${link.file}: truncated: ${size} bytes on disk, ${link.fileBytes} recorded`);
  if (link.fileBytes !== undefined && size > link.fileBytes) warnings.push(`${link.file}: ${size} bytes on disk, more than the ${link.fileBytes} recorded`);

  const image = header ?? (await info(file).catch((error: Error) => error));
  if (image instanceof Error) return { problems: [...problems, `${link.file}: qemu-img cannot open it: ${stderrOf(image)}`], warnings };
  if (link.virtualSize !== undefined && image.virtualSize !== link.virtualSize) problems.push(`${link.file}: virtual size ${image.virtualSize}, ${link.virtualSize} recorded`);
  if (image.corrupt) problems.push(`${link.file}: qcow2 corrupt flag is set`);
  problems.push(...(await backingProblems(repoRoot, link, image.backingFilename, image.fullBackingFilename, image.backingFormat, opened)));

  const health = await checkFile(file);
  if (!health.opened) problems.push(`${link.file}: qemu-img check cannot open it: ${health.error}`);
  else {
    if (health.corruptions > 0) problems.push(`${link.file}: qcow2 check found ${health.corruptions} corruption(s)${firstLine(health.messages)}`);
    if (health.checkErrors > 0) problems.push(`${link.file}: qcow2 check hit ${health.checkErrors} error(s) while checking${firstLine(health.messages)}`);
    if (health.error) problems.push(`${link.file}: ${health.error}`);
    if (health.leaks > 0) warnings.push(`${link.file}: ${health.leaks} leaked cluster(s) (wasted space only; qemu-img check -r leaks reclaims them)`);
  }
  return { problems, warnings };
}

/** In this process for the layout Sendense writes, by qemu-img for any other (see qcow2-check.ts); qemu-img also says why a file it cannot read fails. */
async function checkFile(file: string): Promise<CheckResult> {
  const own = await checkQcow2(file).catch(() => null);
  if (!own) return check(file);
  const { corruptions, leaks, checkErrors, messages } = own;
  return { ok: corruptions === 0 && checkErrors === 0, opened: true, corruptions, leaks, checkErrors, allocatedClusters: null, totalClusters: null, imageEndOffset: null, error: null, messages: messages.join('\n') };
}

async function backingProblems(repoRoot: string, link: ChainLink, stored: string | null, full: string | null, format: string | null, opened: ReadonlyMap<string, number>): Promise<string[]> {
  const expected = link.parentFile === null ? null : resolve(repoRoot, link.parentFile);
  if (stored === null || full === null) return expected ? [`${link.file}: has no backing file but its recorded parent is ${link.parentFile}`] : [];
  const problems: string[] = [];
  if (isAbsolute(stored)) problems.push(`${link.file}: backing path "${stored}" is absolute, so the repository cannot be moved`);
  if (expected === null) problems.push(`${link.file}: backs onto "${stored}" but is recorded as a full point`);
  else if (resolve(full) !== expected) problems.push(`${link.file}: wrong parent: backs onto "${stored}" (${resolve(full)}) but its recorded parent is ${link.parentFile}`);
  if (!opened.has(resolve(full)) && !(await exists(resolve(full)))) problems.push(`${link.file}: broken backing path: "${stored}" does not exist`);
  if (format !== 'qcow2') problems.push(`${link.file}: backing format is ${format ?? 'not recorded'}, expected qcow2 (qemu would have to probe it)`);
  return problems;
}

/** Per-file checks can all pass while qemu still cannot open the whole chain; this is the final word. */
function wholeChainProblems(repoRoot: string, links: readonly ChainLink[], chain: ImageInfo[] | Error): string[] {
  const newest = links[links.length - 1];
  if (chain instanceof Error) return [`${newest.file}: qemu-img cannot open its backing chain: ${stderrOf(chain)}`];
  const reported = chain.map((image) => resolve(image.filename)).reverse();
  const recorded = links.map((link) => resolve(repoRoot, link.file));
  if (links[0].parentFile !== null) recorded.unshift(resolve(repoRoot, links[0].parentFile));
  const tail = reported.slice(reported.length - recorded.length);
  if (reported.length < recorded.length || tail.some((file, i) => file !== recorded[i])) {
    return [`${newest.file}: qemu-img reports the chain ${reported.join(' <- ')} but the recorded chain is ${recorded.join(' <- ')}`];
  }
  return [];
}

function stderrOf(error: Error): string {
  const stderr = (error as { stderr?: string }).stderr;
  return (stderr && stderr.trim()) || error.message;
}

function firstLine(messages: string): string {
  const line = messages.split('\n').find((l) => l.trim());
  return line ? ` (${line.trim()})` : '';
}
