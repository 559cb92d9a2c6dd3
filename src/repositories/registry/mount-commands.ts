import { CifsSource, NfsSource } from './repository.events';

export interface Command {
  file: string;
  args: string[];
}

const DEFAULT_NFS_OPTIONS = 'vers=4.2,hard,timeo=600,retrans=2';

/**
 * The exact commands the hub runs to attach network repositories. They are
 * argument vectors (never a shell line), so server and share names cannot inject anything.
 */
export function nfsMountCommand(source: NfsSource, mountPoint: string): Command {
  return { file: 'mount', args: ['-t', 'nfs', '-o', source.options || DEFAULT_NFS_OPTIONS, `${source.server}:${source.export}`, mountPoint] };
}

export function cifsMountCommand(source: CifsSource, mountPoint: string, credentialsFile: string): Command {
  const options = [`credentials=${credentialsFile}`, ...(source.options ? [source.options] : [])].join(',');
  return { file: 'mount', args: ['-t', 'cifs', source.share, mountPoint, '-o', options] };
}

/** mount.cifs reads username and password from a 0600 file, so the password never shows in `ps`. */
export function cifsCredentials(username: string, password: string): string {
  return `username=${username}\npassword=${password}\n`;
}

export function unmountCommand(mountPoint: string): Command {
  return { file: 'umount', args: [mountPoint] };
}

export const NFS_SERVER = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?$|^\[[0-9A-Fa-f:]+\]$/;
export const NFS_EXPORT = /^\/[A-Za-z0-9._\/-]{0,1023}$/;
export const CIFS_SHARE = /^\/\/[A-Za-z0-9.-]{1,253}\/[A-Za-z0-9._ $-]{1,80}(\/[A-Za-z0-9._ $-]{1,255})*$/;
export const MOUNT_OPTIONS = /^[A-Za-z0-9_.=:,-]{0,512}$/;
