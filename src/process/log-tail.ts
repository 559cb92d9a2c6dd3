import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** Enough for 20 lines of error messages; the log of a long-lived process is never read whole. */
const TAIL_BYTES = 16 * 1024;

/** The last lines of a child's log file, '' when there is none. */
export function readLogTail(path: string, maxLines = 20, maxBytes = TAIL_BYTES): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, maxBytes);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    return buffer.toString('utf8').trimEnd().split('\n').slice(-maxLines).join('\n');
  } finally {
    closeSync(fd);
  }
}
