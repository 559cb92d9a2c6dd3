import { closeSync, fstatSync, openSync, promises as fs } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ProcessError, ProcessResult, runProcess } from '../process/run-process';
import { imageArgs, imageJson, imageKeys, imageOptions, SECRET_ID, secretObjectArgs } from './image-keys';
import { createEncryptedQcow2 } from './luks-qcow2';
import { parseQcow2Header, readQcow2Bitmaps, readQcow2Header } from './qcow2-header';

/**
 * The one qemu-img wrapper: the hub's repositories (create, inspect, check,
 * merge, rebase) and the agent's change tracking (bitmaps) both go through
 * it. LC_ALL=C keeps qemu's messages stable, since callers and operators
 * match on them.
 */
export class QemuImgError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    detail?: string,
    readonly tool: string = 'qemu-img',
  ) {
    super(`${tool} ${args.join(' ')} failed (${exitCode === null ? 'killed' : `exit ${exitCode}`})${detail ? `: ${detail}` : ''}${stderr.trim() ? `: ${stderr.trim()}` : ''}`);
    this.name = 'QemuImgError';
  }

  /** A writer (a running VM, a writable qemu-nbd) holds the image. */
  get locked(): boolean {
    return isLockMessage(this.stderr);
  }
}

/**
 * qemu's image-locking failures (7.2 prints e.g. `Failed to get "write" lock`
 * or `Failed to get shared "write" lock`, followed by `Is another process using
 * the image [FILE]?`; older releases say `Failed to lock byte NNN`).
 */
export function isLockMessage(stderr: string): boolean {
  return /Failed to get (shared )?"[a-z ]+" lock|Failed to lock byte|Is another process using the image/i.test(stderr);
}

export interface QemuToolOptions {
  cwd?: string;
  /** Exit codes that carry a meaningful answer (check: 2 and 3, compare: 1) rather than a failure. */
  acceptExitCodes?: readonly number[];
  /** Default: the tool's name, looked up in PATH. */
  binary?: string;
  /** No limit by default: a commit or rebase of a large image takes as long as it takes. */
  timeoutMs?: number;
  /** Kills the tool when aborted. */
  signal?: AbortSignal;
  /** With `-p`: the share done, 0 to 1, each time the tool prints it. */
  onProgress?: (done: number) => void;
}

/** `-p` prints `    (12.50/100%)` and a carriage return, again and again; a chunk of output may end inside one. */
export function progressReader(onProgress: (done: number) => void): (chunk: string) => void {
  let rest = '';
  return (chunk) => {
    const text = rest + chunk;
    let last: number | null = null;
    for (const m of text.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)) last = Number(m[1]);
    rest = text.slice(text.lastIndexOf(')') + 1).slice(-64);
    if (last !== null) onProgress(Math.min(1, last / 100));
  };
}

/** Where to find qemu-img and how long one call may take, for every operation below. */
export type QemuImgRunOptions = Pick<QemuToolOptions, 'binary' | 'timeoutMs'>;

export async function runQemuTool(tool: 'qemu-img' | 'qemu-io', args: readonly string[], options: QemuToolOptions = {}): Promise<ProcessResult> {
  try {
    const { onProgress } = options;
    const onStdout = onProgress && progressReader(onProgress);
    return await runProcess(options.binary ?? tool, args, { cwd: options.cwd, acceptExitCodes: options.acceptExitCodes, timeoutMs: options.timeoutMs, signal: options.signal, onStdout });
  } catch (error) {
    if (!(error instanceof ProcessError)) throw error;
    const { failure } = error;
    if (failure.kind === 'spawn') throw new QemuImgError(args, null, '', `cannot run ${tool}: ${failure.message}`, tool);
    if (failure.kind === 'timeout') throw new QemuImgError(args, null, error.stderr, `timed out after ${failure.timeoutMs} ms`, tool);
    throw new QemuImgError(args, error.exitCode, error.stderr, undefined, tool);
  }
}

export function runQemuImg(args: readonly string[], options?: QemuToolOptions): Promise<ProcessResult> {
  return runQemuTool('qemu-img', args, options);
}

export interface BitmapInfo {
  name: string;
  granularity: number;
  /** Raw qcow2 flags as qemu-img prints them: `auto` (enabled: records writes), `in-use`. */
  flags: string[];
  /** The `auto` flag: qemu loads the bitmap enabled, so it records writes. */
  enabled: boolean;
  /**
   * The `in-use` flag. On an image nobody has open this means a writer
   * opened it and died without storing its bitmaps (SIGKILL, crash, power
   * loss): qemu refuses such a bitmap as inconsistent. While a writer runs,
   * every bitmap shows in-use, which is why inspection for bitmap decisions
   * is done without `-U` (it fails on a locked image instead).
   */
  inUse: boolean;
}

export interface ImageInfo {
  filename: string;
  format: string;
  virtualSize: number;
  /** Bytes allocated on the host filesystem, not the file length. */
  actualSize: number | null;
  clusterSize: number | null;
  /** As stored in the header: relative names are relative to the image's own directory. */
  backingFilename: string | null;
  /** backingFilename resolved against the image's directory by qemu. */
  fullBackingFilename: string | null;
  backingFormat: string | null;
  dirty: boolean;
  /** qcow2 sets this flag when it found inconsistent metadata while the image was in use. */
  corrupt: boolean;
  encrypted: boolean;
  /** Persistent dirty bitmaps; qcow2 only, empty for other formats. */
  bitmaps: BitmapInfo[];
  raw: Record<string, unknown>;
}

export interface CheckResult {
  /** Opened, no corruptions and no check errors. Leaks only waste space, so they do not clear ok. */
  ok: boolean;
  opened: boolean;
  corruptions: number;
  leaks: number;
  checkErrors: number;
  allocatedClusters: number | null;
  totalClusters: number | null;
  imageEndOffset: number | null;
  /** qemu-img's own text when it could not open or check the image at all, else null. */
  error: string | null;
  /** Everything qemu-img printed on stderr (per-cluster ERROR/Leaked lines). */
  messages: string;
}

export interface Measurement {
  required: number;
  fullyAllocated: number;
  bitmaps: number | null;
}

export interface CreateOptions {
  cwd?: string;
  clusterSize?: number;
  /** qemu-img create silently truncates an existing file; a restore point must never be clobbered by accident. */
  overwrite?: boolean;
}

/** A file created in an encrypted repository (image-keys.ts) is encrypted with the repository's key. */
export async function createFull(file: string, virtualSize: number, options: CreateOptions = {}): Promise<void> {
  if (!Number.isSafeInteger(virtualSize) || virtualSize <= 0) throw new Error(`virtual size must be a positive integer, got ${virtualSize}`);
  const target = await refuseExisting(file, options);
  const keyFile = imageKeys.keyForNewFile(target);
  if (keyFile) await createEncryptedQcow2(target, keyFile, { virtualSize, clusterSize: options.clusterSize });
  else await createImage(target, [], virtualSize, options);
}

/**
 * The backing path is stored relative to the overlay's directory so the repository can be moved as a whole. An
 * encrypted overlay is created without opening its backing file (-u; qemu would need the parent's secret), so its
 * size is the one given or the parent's header's.
 */
export async function createOverlay(file: string, parentFileRelative: string, options: CreateOptions & { virtualSize?: number } = {}): Promise<void> {
  assertRelative(parentFileRelative);
  const target = await refuseExisting(file, options);
  const keyFile = imageKeys.keyForNewFile(target);
  if (keyFile) {
    const virtualSize = options.virtualSize ?? (await parentSize(resolve(dirname(target), parentFileRelative)));
    await createEncryptedQcow2(target, keyFile, { virtualSize, clusterSize: options.clusterSize, backingFile: parentFileRelative });
    return;
  }
  await createImage(target, ['-b', parentFileRelative, '-F', 'qcow2'], options.virtualSize, options);
}

/** The parent's virtual size from its header: no qemu process, and no key needed for an encrypted parent. */
async function parentSize(parent: string): Promise<number> {
  const header = await readQcow2Header(parent);
  if (!header) throw new Error(`${parent} is not a qcow2 image this hub can read`);
  return header.virtualSize;
}

/** A plain file (an encrypted one is written by luks-qcow2.ts). */
async function createImage(target: string, backing: string[], virtualSize: number | undefined, options: CreateOptions): Promise<void> {
  const createOptions = options.clusterSize === undefined ? [] : ['-o', `cluster_size=${options.clusterSize}`];
  await runQemuImg(['create', '-q', '-f', 'qcow2', ...createOptions, ...backing, target, ...(virtualSize === undefined ? [] : [String(virtualSize)])], { cwd: options.cwd });
}

export interface InfoOptions extends QemuImgRunOptions {
  backingChain?: boolean;
  format?: string;
  cwd?: string;
  /**
   * -U (the default): inspection works while a qemu-nbd export or a running
   * VM holds the image lock, but bitmap flags read that way are not
   * trustworthy. false: qemu-img fails with a lock error while a writer has
   * the image (QemuImgError.locked), so the flags it reads are.
   */
  shareLocks?: boolean;
}

export function info(file: string, options?: InfoOptions & { backingChain?: false }): Promise<ImageInfo>;
export function info(file: string, options: InfoOptions & { backingChain: true }): Promise<ImageInfo[]>;
export async function info(file: string, options: InfoOptions = {}): Promise<ImageInfo | ImageInfo[]> {
  const args = infoArgs(file, { ...options, format: options.format ?? 'qcow2' });
  const { stdout } = await runQemuImg(args, options);
  const parsed = parseJson(args, stdout);
  return options.backingChain ? (parsed as Record<string, unknown>[]).map(toImageInfo) : toImageInfo(parsed as Record<string, unknown>);
}

function infoArgs(file: string, options: InfoOptions): string[] {
  return ['info', ...(options.shareLocks === false ? [] : ['-U']), ...(options.format ? ['-f', options.format] : []), '--output=json', ...(options.backingChain ? ['--backing-chain'] : []), file];
}

/** What the agent's source driver needs to know of one disk image. */
export interface ImageSummary {
  format: string;
  virtualSize: number;
  /** As qemu resolved it (full-backing-filename), else as stored. */
  backingFile?: string;
  encrypted: boolean;
  bitmaps: BitmapInfo[];
}

/**
 * Read from the image's own header where it answers as qemu-img info would (summaryFromHeader), else from qemu-img
 * info. Without a format qemu-img probes it: the agent's inventory may leave it open.
 */
export async function imageSummary(file: string, options: Omit<InfoOptions, 'backingChain'> = {}): Promise<ImageSummary> {
  const fromHeader = summaryFromHeader(resolve(options.cwd ?? process.cwd(), file), file, options.format, options.shareLocks !== false);
  if (fromHeader) return fromHeader;
  const { stdout } = await runQemuImg(infoArgs(file, options), options);
  return parseImageInfo(stdout);
}

/**
 * qemu-img info's summary of a regular file declared raw, or of a qcow2 v3 image without incompatible features,
 * read from the file; null for anything else (a block device, a format to probe, another version or feature, a
 * header or bitmap directory qemu would read otherwise, a read that fails), and qemu-img answers. The agent
 * inspects a disk several times in every backup, and each qemu-img process held its event loop some 5 ms on a busy
 * machine (docs/benchmarks.md, fleet). Without `shareLocks`, qemu-img would fail while a writer holds the image: a
 * writer has every persistent bitmap of the image marked in use (qemu marks them when it opens an image for
 * writing), so an image with one in use goes to qemu-img, whose lock error tells a running writer from a dead one.
 * With no bitmap in use there is no writer, or the image has no bitmaps: then `qemu-img bitmap` and qemu-nbd, which
 * take the lock, are the next to open it and refuse a writer's image.
 */
export function summaryFromHeader(path: string, file: string, format: string | undefined, shareLocks: boolean): ImageSummary | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) return null;
    // qemu counts a raw image in whole 512-byte sectors; it has no bitmaps to tell a writer by, so its lock check stays qemu-img's
    if (format === 'raw') return shareLocks ? { format: 'raw', virtualSize: Math.ceil(stat.size / 512) * 512, encrypted: false, bitmaps: [] } : null;
    if (format !== undefined && format !== 'qcow2') return null;
    const header = parseQcow2Header(fd);
    if (!header || header.incompatible !== 0n) return null;
    const bitmaps = readQcow2Bitmaps(fd, header);
    if (!bitmaps || (!shareLocks && bitmaps.some((b) => b.flags.includes('in-use')))) return null;
    const backing = header.backingFilename === null ? null : fullBackingFilename(file, header.backingFilename);
    if (backing === undefined) return null;
    return {
      format: 'qcow2',
      virtualSize: header.virtualSize,
      ...(backing !== null ? { backingFile: backing } : {}),
      encrypted: header.cryptMethod !== 0,
      bitmaps: bitmaps.map((b) => bitmapInfo(b.name, b.granularity, b.flags)),
    };
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

/** As qemu combines them (path_combine): the backing name after the image's directory as given, unless absolute; undefined for a protocol name. */
function fullBackingFilename(file: string, backing: string): string | undefined {
  if (/^[^/]*:/.test(backing) || /^[^/]*:/.test(file)) return undefined;
  if (backing.startsWith('/')) return backing;
  return file.slice(0, file.lastIndexOf('/') + 1) + backing;
}

/** Parses `qemu-img info --output=json` of one image (not --backing-chain) into its summary. */
export function parseImageInfo(json: string): ImageSummary {
  const raw = JSON.parse(json) as Record<string, unknown>;
  if (typeof raw['format'] !== 'string' || typeof raw['virtual-size'] !== 'number') throw new Error(`unexpected qemu-img info output: ${json.slice(0, 200)}`);
  const image = toImageInfo(raw);
  const backing = image.fullBackingFilename ?? image.backingFilename;
  return { format: image.format, virtualSize: image.virtualSize, ...(backing !== null ? { backingFile: backing } : {}), encrypted: image.encrypted, bitmaps: image.bitmaps };
}

export async function addBitmap(file: string, name: string, options: QemuImgRunOptions & { granularity?: number } = {}): Promise<void> {
  await runQemuImg(['bitmap', '--add', '--enable', ...(options.granularity ? ['-g', String(options.granularity)] : []), '-f', 'qcow2', file, name], options);
}

export async function removeBitmap(file: string, name: string, options: QemuImgRunOptions = {}): Promise<void> {
  await runQemuImg(['bitmap', '--remove', '-f', 'qcow2', file, name], options);
}

/**
 * Merges bitmap `source` into bitmap `target` of the same image. In 7.2,
 * `-b FILE` names another image as the source; naming the same file with
 * `-b` opens it a second time and fails on qemu's own image lock, so for
 * one image the source is given without `-b`.
 */
export async function mergeBitmap(file: string, source: string, target: string, options: QemuImgRunOptions = {}): Promise<void> {
  await runQemuImg(['bitmap', '--merge', source, '-f', 'qcow2', file, target], options);
}

/**
 * Exit codes: 0 clean, 2 corruptions, 3 leaks only, 1 could not check (often could not open), 63 unsupported.
 * check only inspects the named image's own metadata, yet qemu-img opens the whole backing chain first and
 * gives up if a parent is missing; the json: filename with "backing": null checks the image on its own.
 */
export async function check(file: string, options: { cwd?: string; format?: string } = {}): Promise<CheckResult> {
  const format = options.format ?? 'qcow2';
  const filename = resolve(options.cwd ?? process.cwd(), file);
  const key = format === 'qcow2' ? imageKeys.keyForImage(filename) : undefined;
  const encrypted = key?.encryptedLayers[0] === true;
  const target = { driver: format, ...(format === 'qcow2' ? { backing: null } : {}), ...(encrypted ? { 'encrypt.key-secret': SECRET_ID } : {}), file: { driver: 'file', filename } };
  const args = ['check', ...(encrypted ? secretObjectArgs(key.keyFile) : []), '-U', '--output=json', `json:${JSON.stringify(target)}`];
  const { exitCode, stdout, stderr } = await runQemuImg(args, { cwd: options.cwd, acceptExitCodes: [0, 1, 2, 3, 63] });
  let report: Record<string, unknown> | null = null;
  try {
    report = stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : null;
  } catch {
    report = null;
  }
  if (!report) {
    const error = stderr.trim() || `qemu-img check exited ${exitCode} without a report`;
    return { ok: false, opened: false, corruptions: 0, leaks: 0, checkErrors: 0, allocatedClusters: null, totalClusters: null, imageEndOffset: null, error, messages: stderr };
  }
  const corruptions = numberOr(report['corruptions'], 0);
  const checkErrors = numberOr(report['check-errors'], 0);
  const unsupported = exitCode === 63;
  return {
    ok: !unsupported && exitCode !== 1 && corruptions === 0 && checkErrors === 0,
    opened: true,
    corruptions,
    leaks: numberOr(report['leaks'], 0),
    checkErrors,
    allocatedClusters: numberOr(report['allocated-clusters'], null),
    totalClusters: numberOr(report['total-clusters'], null),
    imageEndOffset: numberOr(report['image-end-offset'], null),
    error: unsupported ? 'format does not support checks' : exitCode === 1 ? stderr.trim() || 'check could not complete' : null,
    messages: stderr,
  };
}

export interface CommitOptions {
  cwd?: string;
  /**
   * qemu-img empties the top image after committing unless told not to (-d). We keep it by default:
   * an untouched top stays a correct overlay of the updated base, so a commit interrupted at any
   * point can simply be run again.
   */
  emptyTop?: boolean;
}

/** Writes the top image's allocated clusters (data and zero clusters) into its backing file. */
export async function commit(top: string, options: CommitOptions = {}): Promise<void> {
  const file = resolve(options.cwd ?? process.cwd(), top);
  await runQemuImg(['commit', '-q', ...(options.emptyTop ? [] : ['-d']), ...imageArgs(file, imageKeys.keyForImage(file))], { cwd: options.cwd });
}

export interface RebaseOptions {
  cwd?: string;
  /**
   * Unsafe (-u) only rewrites the header; the caller guarantees that the new backing reads exactly like
   * the old one. Safe mode first copies every cluster where the two differ into the image.
   */
  unsafe: boolean;
}

/** newBackingRelative is relative to the image's directory; null makes the image standalone. */
export async function rebase(file: string, newBackingRelative: string | null, options: RebaseOptions): Promise<void> {
  if (newBackingRelative !== null) assertRelative(newBackingRelative);
  const image = resolve(options.cwd ?? process.cwd(), file);
  const key = imageKeys.keyForImage(image);
  const backing = newBackingRelative === null ? ['-b', ''] : ['-b', newBackingRelative, '-F', 'qcow2'];
  if (!key) {
    await runQemuImg(['rebase', '-q', '-f', 'qcow2', ...(options.unsafe ? ['-u'] : []), ...backing, image], { cwd: options.cwd });
    return;
  }
  if (!options.unsafe && newBackingRelative !== null) {
    // qemu-img opens the new backing file by its name alone, so it could not decrypt it: it is named here by its
    // options, with the secrets of its chain, and the header then holds that name until the unsafe rebase below
    // writes the relative one. A crash in between leaves a json: backing name (see chain-surgery.ts).
    const parent = resolve(dirname(image), newBackingRelative);
    const parentKey = imageKeys.keyForImage(parent) ?? { keyFile: key.keyFile, encryptedLayers: [] };
    await runQemuImg(['rebase', '-q', ...imageArgs(image, key).slice(0, -1), '-b', `json:${JSON.stringify(imageJson(parent, parentKey))}`, '-F', 'qcow2', imageArgs(image, key).at(-1)!], { cwd: options.cwd });
  }
  if (!options.unsafe && newBackingRelative === null) {
    await runQemuImg(['rebase', '-q', ...imageArgs(image, key).slice(0, -1), '-b', '', imageArgs(image, key).at(-1)!], { cwd: options.cwd });
    return;
  }
  // -u opens the image without its backing chain: only its own secret
  const own = { keyFile: key.keyFile, encryptedLayers: key.encryptedLayers.slice(0, 1) };
  await runQemuImg(['rebase', '-q', '-u', ...backing, ...imageArgs(image, own)], { cwd: options.cwd });
}

export type MeasureSource = { file: string; format?: string } | { size: number };

/** Space a conversion of the source (or a new image of that size) into outputFormat needs. */
export async function measure(source: MeasureSource, options: { outputFormat?: string; cwd?: string } = {}): Promise<Measurement> {
  const input = 'file' in source ? ['-U', ...imageArgs(source.file, (source.format ?? 'qcow2') === 'qcow2' ? imageKeys.keyForImage(resolve(options.cwd ?? process.cwd(), source.file)) : undefined, source.format ?? 'qcow2')] : ['--size', String(source.size)];
  const args = ['measure', '--output=json', '-O', options.outputFormat ?? 'qcow2', ...input];
  const { stdout } = await runQemuImg(args, { cwd: options.cwd });
  const report = parseJson(args, stdout) as Record<string, unknown>;
  return { required: numberOr(report['required'], 0), fullyAllocated: numberOr(report['fully-allocated'], 0), bitmaps: numberOr(report['bitmaps'], null) };
}

export interface CompareOptions {
  formatA?: string;
  formatB?: string;
  /** -s also fails on differing allocation; leave off to compare guest-visible content only. */
  strict?: boolean;
  forceShare?: boolean;
  cwd?: string;
}

/** Guest-visible content equality. Past the smaller image's end the larger must read as zeros. */
export async function compare(a: string, b: string, options: CompareOptions = {}): Promise<boolean> {
  const [formatA, formatB] = [options.formatA ?? 'qcow2', options.formatB ?? 'qcow2'];
  const at = (file: string) => resolve(options.cwd ?? process.cwd(), file);
  const [keyA, keyB] = [formatA === 'qcow2' ? imageKeys.keyForImage(at(a)) : undefined, formatB === 'qcow2' ? imageKeys.keyForImage(at(b)) : undefined];
  const key = keyA ?? keyB;
  // --image-opts applies to both images: each is then named by its options, a plain one with no secret
  const images = key
    ? [...secretObjectArgs(key.keyFile), '--image-opts', imageOptions(at(a), keyA ?? { keyFile: key.keyFile, encryptedLayers: [] }, formatA), imageOptions(at(b), keyB ?? { keyFile: key.keyFile, encryptedLayers: [] }, formatB)]
    : ['-f', formatA, '-F', formatB, a, b];
  const args = ['compare', ...(options.strict ? ['-s'] : []), ...(options.forceShare ? ['-U'] : []), ...images];
  const { exitCode } = await runQemuImg(args, { cwd: options.cwd, acceptExitCodes: [0, 1] });
  return exitCode === 0;
}

/**
 * A standalone copy of what `file` reads through its chain. The copy is written in the clear: it is what an
 * operator downloads, and the point's own files stay as they are.
 */
export async function convert(file: string, target: string, outputFormat: 'qcow2' | 'raw', options: { createOptions?: string; signal?: AbortSignal } = {}): Promise<void> {
  const source = imageArgs(file, imageKeys.keyForImage(resolve(file)));
  await runQemuImg(['convert', '-q', ...source.slice(0, -1), '-O', outputFormat, ...(options.createOptions ? ['-o', options.createOptions] : []), source.at(-1)!, target], { signal: options.signal });
}

/**
 * A new standalone image at `file` (`virtualSize`, at least the source's) that reads exactly as `source` reads through
 * its backing chain: a synthetic full. It is created as a full is (encrypted with the repository's key where the
 * repository is encrypted) and filled by one `qemu-img convert -n` that writes only what the chain holds (clusters
 * that read as zeroes stay unallocated, `--target-is-zero`), with its reads and writes in parallel (-m 16 -W).
 */
export async function synthesizeFull(source: string, file: string, virtualSize: number, options: CreateOptions & { signal?: AbortSignal } = {}): Promise<void> {
  await createFull(file, virtualSize, options);
  const target = resolve(options.cwd ?? process.cwd(), file);
  const sourceKey = imageKeys.keyForImage(resolve(options.cwd ?? process.cwd(), source));
  const targetKey = imageKeys.keyForNewFile(target);
  const keyFile = sourceKey?.keyFile ?? targetKey;
  // one secret object serves both sides: a source and its synthetic full are files of the same repository
  const secrets = keyFile ? secretObjectArgs(keyFile) : [];
  const from = sourceKey ? ['--image-opts', imageOptions(source, sourceKey)] : ['-f', 'qcow2', source];
  const to = targetKey ? ['--target-image-opts', imageOptions(target, { keyFile: targetKey, encryptedLayers: [true] })] : ['-O', 'qcow2', target];
  await runQemuImg(['convert', '-q', '-n', '--target-is-zero', '-m', '16', '-W', ...secrets, ...from, ...to], { cwd: options.cwd, signal: options.signal });
}

function toImageInfo(raw: Record<string, unknown>): ImageInfo {
  const specific = raw['format-specific'] as { type?: string; data?: { corrupt?: boolean; bitmaps?: Array<{ name?: unknown; granularity?: unknown; flags?: unknown }> } } | undefined;
  const bitmaps = (specific?.type === 'qcow2' ? (specific.data?.bitmaps ?? []) : []).map((b) => bitmapInfo(String(b.name), Number(b.granularity), Array.isArray(b.flags) ? b.flags.map(String) : []));
  return {
    filename: String(raw['filename']),
    format: String(raw['format']),
    virtualSize: numberOr(raw['virtual-size'], 0),
    actualSize: numberOr(raw['actual-size'], null),
    clusterSize: numberOr(raw['cluster-size'], null),
    backingFilename: stringOrNull(raw['backing-filename']),
    fullBackingFilename: stringOrNull(raw['full-backing-filename']),
    backingFormat: stringOrNull(raw['backing-filename-format']),
    dirty: raw['dirty-flag'] === true,
    corrupt: specific?.data?.corrupt === true,
    encrypted: raw['encrypted'] === true,
    bitmaps,
    raw,
  };
}

/** A bitmap as qemu-img info lists it, and what its flags mean. */
function bitmapInfo(name: string, granularity: number, flags: string[]): BitmapInfo {
  return { name, granularity, flags, enabled: flags.includes('auto'), inUse: flags.includes('in-use') };
}

function parseJson(args: readonly string[], stdout: string): unknown {
  try {
    return JSON.parse(stdout);
  } catch {
    throw new QemuImgError(args, 0, '', `unparseable JSON output: ${stdout.slice(0, 200)}`);
  }
}

function numberOr<T extends number | null>(value: unknown, fallback: T): number | T {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value : null;
}

function assertRelative(path: string): void {
  if (!path || isAbsolute(path)) throw new Error(`backing path must be relative to the image's directory so the repository can move, got "${path}"`);
}

async function refuseExisting(file: string, options: CreateOptions): Promise<string> {
  const target = resolve(options.cwd ?? process.cwd(), file);
  if (!options.overwrite && (await exists(target))) throw new Error(`refusing to overwrite existing image ${target}`);
  return target;
}

async function exists(path: string): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
