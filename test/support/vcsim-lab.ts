import { ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** What builds the launcher: Debian 12 packages, installed by deployment/install-deps.sh. */
export const VCSIM_DEBIAN_PACKAGES = ['golang-go', 'golang-github-vmware-govmomi-dev', 'golang-github-google-uuid-dev'];
const GOCODE = '/usr/share/gocode';
const REQUIRED_GO_SOURCES = [`${GOCODE}/src/github.com/vmware/govmomi/simulator/simulator.go`, `${GOCODE}/src/github.com/google/uuid/uuid.go`];

/** GOPATH mode, offline; no C compiler needed (install-deps.sh installs without recommends: no gcc). */
const GO_ENV = { GO111MODULE: 'off', GOPROXY: 'off', GOFLAGS: '', CGO_ENABLED: '0' };

const REPO = join(__dirname, '..', '..');
/** The launcher's Go sources (test/fixtures/vcsim); compiled into dist/ this file still finds them in the source tree. */
const SOURCES = [join(__dirname, '..', 'fixtures', 'vcsim'), join(REPO, '..', 'test', 'fixtures', 'vcsim')].find((d) => existsSync(join(d, 'main.go')))!;
/** Built binaries, by the hash of their sources: outside the tracked files, never committed. */
const CACHE = process.env.SENDENSE_VCSIM_CACHE ?? join(SOURCES, '..', '..', '..', 'node_modules', '.cache', 'sendense-vcsim');

export interface VcsimDatastore {
  name: string;
  /** The local directory holding the datastore's files. */
  path: string;
}

/** The launcher's ready line (test/fixtures/vcsim/README.md). */
export interface VcsimReady {
  /** https://127.0.0.1:PORT/sdk */
  url: string;
  user: string;
  password: string;
  /** Thumbprints of the server certificate, "AA:BB:..." as vSphere prints them. */
  sha1: string;
  sha256: string;
  datacenter: string;
  datastores: VcsimDatastore[];
  /** The SIMULATED changed block tracking: its block size, its page, its control endpoints. */
  cbt: { simulated: true; blockSize: number; pageBytes: number; calls: string; reset: string };
}

export interface Vcsim extends VcsimReady {
  pid: number;
  /** What the launcher wrote on stderr (vcsim's log), for diagnostics. */
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after 10 s; resolves once the process is gone. */
  stop(): Promise<void>;
}

export interface VcsimOptions {
  /** Simulated CBT: the most bytes one QueryChangedDiskAreas answer covers (a multiple of 64 KiB; default 64 MiB). */
  cbtPageBytes?: number;
  /** VMs per standalone host and per cluster (default 2: four VMs). */
  vms?: number;
  user?: string;
  password?: string;
  /** Datastore file access (/folder) needs the session cookie or basic auth, like vCenter (default true). */
  folderAuth?: boolean;
  /** Power the model's VMs on (default true). */
  autostart?: boolean;
  /** vcsim logs the SOAP traffic on stderr. */
  trace?: boolean;
}

let building: Promise<string> | undefined;

/**
 * The vcsim launcher's binary, built (GOPATH mode, offline) unless a build of the same sources is cached.
 * Throws, naming the Debian packages, when go or the govmomi sources are missing: a test must not skip.
 */
export function buildVcsim(): Promise<string> {
  building ??= build().catch((error) => {
    building = undefined;
    throw error;
  });
  return building;
}

async function build(): Promise<string> {
  const missing = `install the Debian packages ${VCSIM_DEBIAN_PACKAGES.join(' ')} (deployment/install-deps.sh)`;
  let goVersion: string;
  try {
    goVersion = (await run('go', ['version'], { timeout: 30_000 })).stdout.trim();
  } catch (error) {
    throw new Error(`vcsim launcher: cannot run \`go\` (${(error as Error).message}): ${missing}`);
  }
  for (const file of REQUIRED_GO_SOURCES) if (!existsSync(file)) throw new Error(`vcsim launcher: ${file} is missing: ${missing}`);

  const hash = createHash('sha256').update(goVersion).update(JSON.stringify(GO_ENV)).update('\0');
  for (const file of readdirSync(SOURCES).filter((f) => f.endsWith('.go')).sort()) hash.update(file).update('\0').update(readFileSync(join(SOURCES, file))).update('\0');
  const dir = join(CACHE, hash.digest('hex'));
  const binary = join(dir, 'vcsim');
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });

  // Jest runs test files in parallel workers: one builds, the others wait for its binary.
  const lock = join(dir, 'build.lock');
  const deadline = Date.now() + 600_000;
  for (;;) {
    if (existsSync(binary)) return binary;
    let fd: number;
    try {
      fd = openSync(lock, 'wx');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (staleLock(lock)) rmSync(lock, { force: true });
      else if (Date.now() > deadline) throw new Error(`vcsim launcher: ${lock} held for 10 minutes`);
      else await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    try {
      writeSync(fd, String(process.pid));
      closeSync(fd);
      if (existsSync(binary)) return binary;
      // built under another name, renamed once complete: a binary at `binary` is always whole
      const partial = join(dir, `vcsim.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
      try {
        await run('go', ['build', '-o', partial, '.'], {
          cwd: SOURCES,
          timeout: 600_000,
          maxBuffer: 16 << 20,
          env: { ...process.env, ...GO_ENV, GOPATH: `${join(CACHE, 'gopath')}:${GOCODE}`, GOCACHE: process.env.GOCACHE ?? join(CACHE, 'go-build') },
        });
      } catch (error) {
        rmSync(partial, { force: true });
        const said = (error as { stderr?: string }).stderr?.trim();
        throw new Error(`vcsim launcher: go build in ${SOURCES} failed: ${said || (error as Error).message}\n(needs ${VCSIM_DEBIAN_PACKAGES.join(', ')})`);
      }
      renameSync(partial, binary);
      // builds of sources that changed since (26 MB each) go; a running launcher keeps its deleted binary
      for (const old of readdirSync(CACHE).map((d) => join(CACHE, d))) {
        if (/[0-9a-f]{64}$/.test(old) && old !== dir && !existsSync(join(old, 'build.lock'))) rmSync(old, { recursive: true, force: true });
      }
      return binary;
    } finally {
      rmSync(lock, { force: true });
    }
  }
}

/** A lock whose builder is gone (its pid no longer runs) or that is older than any build. */
function staleLock(lock: string): boolean {
  try {
    const pid = Number(readFileSync(lock, 'utf8').trim());
    const age = Date.now() - statSync(lock).mtimeMs;
    if (age > 600_000) return true;
    // an empty lock is one being written right now
    return Number.isInteger(pid) && pid > 0 && !existsSync(`/proc/${pid}`);
  } catch {
    return false; // gone meanwhile: the loop tries again
  }
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Starts the launcher on a loopback port the OS chooses; resolves once it printed its ready line. The process
 * never outlives the test: stop() ends it, an exiting test process sends it SIGTERM, and it exits by itself
 * when its stdin (a pipe from this process) closes, even after a SIGKILL of the test.
 */
export async function startVcsim(options: VcsimOptions = {}): Promise<Vcsim> {
  const binary = await buildVcsim();
  const args = ['-listen', '127.0.0.1:0', '-exit-on-stdin-eof'];
  if (options.cbtPageBytes !== undefined) args.push('-cbt-page', String(options.cbtPageBytes));
  if (options.vms !== undefined) args.push('-vm', String(options.vms));
  if (options.user !== undefined) args.push('-username', options.user);
  if (options.password !== undefined) args.push('-password', options.password);
  if (options.folderAuth !== undefined) args.push(`-folder-auth=${options.folderAuth}`);
  if (options.autostart !== undefined) args.push(`-autostart=${options.autostart}`);
  if (options.trace) args.push('-trace');

  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // SIGTERM: the launcher still removes its datastore directories (at most 5 s later, without a waiting parent)
    process.on('exit', () => {
      for (const child of running) child.kill('SIGTERM');
    });
  }
  const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  running.add(child);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-65536)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
  };

  let ready: VcsimReady;
  try {
    ready = await readyLine(child, exited, 30_000, () => stderr);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    throw error;
  }
  return { ...ready, pid: child.pid!, output: () => stderr, exited, stop };
}

function readyLine(child: ChildProcess, exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>, timeoutMs: number, stderr: () => string): Promise<VcsimReady> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`vcsim did not print its ready line within ${timeoutMs} ms; stderr:\n${stderr()}`)), timeoutMs);
    child.stdout!.on('data', (d) => {
      out += d;
      const end = out.indexOf('\n');
      if (end < 0) return;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out.slice(0, end)) as VcsimReady);
      } catch (error) {
        reject(new Error(`vcsim's ready line is not JSON (${(error as Error).message}): ${out.slice(0, end)}`));
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`vcsim exited (${code ?? signal}) before it was ready; stderr:\n${stderr()}`));
    });
  });
}

/** URL of a file in a datastore: `path` is relative to the datastore's root ("vm/disk.vmdk"). */
export function datastoreFileUrl(vcsim: VcsimReady, datastore: string, path: string): string {
  const origin = new URL(vcsim.url).origin;
  const encoded = path.split('/').map(encodeURIComponent).join('/');
  return `${origin}/folder/${encoded}?dcPath=${encodeURIComponent(vcsim.datacenter)}&dsName=${encodeURIComponent(datastore)}`;
}

/**
 * A monolithic flat VMDK descriptor: `<disk>.vmdk`, whose data is `flatFile` (`<disk>-flat.vmdk`, the raw
 * bytes, `capacityBytes` long, a multiple of 512) in the same directory.
 */
export function flatVmdkDescriptor(flatFile: string, capacityBytes: number): string {
  const sectors = Math.ceil(capacityBytes / 512);
  const cylinders = Math.min(65535, Math.ceil(sectors / (255 * 63)));
  return [
    '# Disk DescriptorFile',
    'version=1',
    'encoding="UTF-8"',
    `CID=${randomBytes(4).toString('hex')}`,
    'parentCID=ffffffff',
    'createType="vmfs"',
    '',
    '# Extent description',
    `RW ${sectors} VMFS "${flatFile}"`,
    '',
    '# The Disk Data Base',
    '#DDB',
    '',
    'ddb.adapterType = "lsilogic"',
    `ddb.geometry.cylinders = "${cylinders}"`,
    'ddb.geometry.heads = "255"',
    'ddb.geometry.sectors = "63"',
    `ddb.uuid = "${vmwareUuid(randomBytes(16))}"`,
    'ddb.virtualHWVersion = "13"',
    '',
  ].join('\n');
}

/** VMware's way of writing a UUID: "60 00 c2 9a 1b 2c 3d 4e-5f 60 71 82 93 a4 b5 c6". */
function vmwareUuid(bytes: Buffer): string {
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0'));
  return `${hex.slice(0, 8).join(' ')}-${hex.slice(8).join(' ')}`;
}
