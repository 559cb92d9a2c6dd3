import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readLogTail } from '../../process/log-tail';
import type { NbdPsk } from '../../nbd-protocol/tls-psk';
import type { PidFileRecord } from './qemu-nbd.types';

const PREFIX = 'qemu-nbd-';
const RECORD_SUFFIX = '.json';
const TAIL_LINES = 20;

/**
 * RFC 7919's ffdhe2048 group (public, the same for everyone). Without a dh-params.pem next to
 * keys.psk, qemu-nbd generates 2048-bit DH parameters at start: 120 ms on a quiet machine, up
 * to 600 ms under load, for every export of every backup.
 */
const FFDHE2048 = `-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
`;

/**
 * Per lease, runDir holds:
 *   qemu-nbd-<lease>.json  our record, written once the export is ready;
 *   qemu-nbd-<lease>.pid   written by qemu-nbd itself (--pid-file), our readiness signal;
 *   qemu-nbd-<lease>.log   qemu-nbd's stderr. A file rather than a pipe so it
 *                          survives the hub (no EPIPE after a hub restart) and
 *                          an adopted export's last words can still be read.
 *   qemu-nbd-<lease>.psk/  keys.psk, the export's TLS pre-shared key (0700/0600):
 *                          qemu-nbd reads it at every client handshake, and the
 *                          hub hands it to the agent whose job the lease serves.
 */
export class RunDirFiles {
  constructor(readonly dir: string) {}

  ensureDir(): void {
    mkdirSync(this.dir, { recursive: true });
  }

  recordPath(leaseId: string): string {
    return join(this.dir, `${PREFIX}${leaseId}${RECORD_SUFFIX}`);
  }

  qemuPidPath(leaseId: string): string {
    return join(this.dir, `${PREFIX}${leaseId}.pid`);
  }

  logPath(leaseId: string): string {
    return join(this.dir, `${PREFIX}${leaseId}.log`);
  }

  pskDir(leaseId: string): string {
    return join(this.dir, `${PREFIX}${leaseId}.psk`);
  }

  writePsk(leaseId: string, psk: NbdPsk): void {
    const dir = this.pskDir(leaseId);
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(dir, 'keys.psk'), `${psk.identity}:${psk.key}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'dh-params.pem'), FFDHE2048);
  }

  readPsk(leaseId: string): NbdPsk | undefined {
    try {
      const [identity, key] = readFileSync(join(this.pskDir(leaseId), 'keys.psk'), 'utf8').trim().split(':');
      return identity && key ? { identity, key } : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * tmp + rename so a hub killed mid-write never leaves half a record. No
   * fsync: the processes a record describes do not survive a power loss either.
   */
  writeRecord(record: PidFileRecord): void {
    const path = this.recordPath(record.leaseId);
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(record, null, 2) + '\n');
    renameSync(tmp, path);
  }

  readRecord(leaseId: string): PidFileRecord | undefined {
    try {
      return parseRecord(readFileSync(this.recordPath(leaseId), 'utf8'));
    } catch {
      return undefined;
    }
  }

  /** Well-formed records, plus one message per file that could not be used. */
  readRecords(): { records: PidFileRecord[]; problems: string[] } {
    const records: PidFileRecord[] = [];
    const problems: string[] = [];
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { records, problems };
      throw error;
    }
    for (const name of names.sort()) {
      if (!name.startsWith(PREFIX) || !name.endsWith(RECORD_SUFFIX)) continue;
      const path = join(this.dir, name);
      try {
        const record = parseRecord(readFileSync(path, 'utf8'));
        if (this.recordPath(record.leaseId) !== path) throw new Error(`it names lease ${record.leaseId}`);
        records.push(record);
      } catch (error) {
        problems.push(`ignoring ${path}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    return { records, problems };
  }

  stderrTail(leaseId: string): string {
    return readLogTail(this.logPath(leaseId), TAIL_LINES);
  }

  removeProcessFiles(leaseId: string): void {
    for (const path of [this.qemuPidPath(leaseId), this.logPath(leaseId)]) rmSync(path, { force: true });
    rmSync(this.pskDir(leaseId), { recursive: true, force: true });
  }

  removeRecord(leaseId: string): void {
    rmSync(this.recordPath(leaseId), { force: true });
  }
}

function parseRecord(text: string): PidFileRecord {
  const value = JSON.parse(text) as Partial<PidFileRecord>;
  const ok =
    typeof value.leaseId === 'string' &&
    Number.isInteger(value.pid) && (value.pid as number) > 0 &&
    Number.isInteger(value.port) &&
    typeof value.file === 'string' &&
    Array.isArray(value.args) && value.args.every((a) => typeof a === 'string') &&
    typeof value.startedAt === 'string';
  if (!ok) throw new Error('not a qemu-nbd pid record');
  const { leaseId, pid, port, file, args, startedAt } = value as PidFileRecord;
  return { leaseId, pid, port, file, args, startedAt };
}
