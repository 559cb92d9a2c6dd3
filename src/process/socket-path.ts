/**
 * A Unix socket's path holds at most 107 bytes (sun_path's 108 with its NUL): nbdkit and PostgreSQL refuse a longer
 * one (qemu takes 108). The hub and the agent keep every socket within it.
 */
export const MAX_SOCKET_PATH = 107;

/**
 * Why `dir` cannot hold the deepest socket a process makes below it (`deepest`, that socket's path relative to
 * `dir`, with its ids at their full length), or null when it can. Checked at start, so that a dir too deep fails
 * there with its name and the length that fits, not at the first restore or backup that makes that socket.
 */
export function socketRoomProblem(setting: string, dir: string, deepest: string): string | null {
  const room = MAX_SOCKET_PATH - Buffer.byteLength(deepest) - 1;
  const length = Buffer.byteLength(dir);
  if (length <= room) return null;
  return `${setting} is ${length} bytes long, and the Unix sockets made below it (as ${dir}/${deepest}) would pass the ${MAX_SOCKET_PATH} bytes a socket's path may have: choose a directory of at most ${room} bytes`;
}
