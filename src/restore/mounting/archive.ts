import { promises as fs } from 'node:fs';
import { basename } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { streamProcess } from '../../process/run-process';
import { resolveInsideVolume } from './safe-path';
import { ZipPaddingTrimmer } from './zip-padding';
import { NotADirectoryPathError } from './volume-path-errors';

export type ArchiveFormat = 'tar.gz' | 'zip';

export interface DirectoryArchive {
  /** The archive bytes; destroyed with an error if the tool fails, so a broken archive never looks complete. */
  stream: Readable;
  /**
   * Resolves once the archive is complete, with the tool's warnings (e.g.
   * FIFOs that zip cannot hold and were left out); rejects if it failed or
   * the reader went away.
   */
  done: Promise<{ warnings: string[] }>;
  contentType: string;
  suggestedFileName: string;
}

interface ArchiverCommand {
  program: string;
  args: string[];
  /** Exit codes after which the archive is complete. */
  okExitCodes: number[];
  contentType: string;
}

/**
 * GNU tar stores symlinks as symlinks unless told to follow (-h), so an
 * out-of-volume link is archived as link text, never as what it points to.
 * Exit 1 only means a file changed while read, impossible on a read-only mount.
 * zip: Info-ZIP's zip cannot store symlinks when writing to a pipe ("zip -0
 * not supported for I/O on pipes"), so bsdtar (libarchive) writes it; it
 * does not follow symlinks either (-L would), names entries in UTF-8, and
 * skips what zip cannot hold (FIFOs, devices) with a warning. The -s rules
 * drop the "./" prefix and the "." entry, which some unzip tools show as a
 * folder; their S flag leaves symlink targets alone. -b 1 keeps its block
 * padding under 512 bytes, and ZipPaddingTrimmer removes that.
 */
function commandFor(format: ArchiveFormat, dir: string): ArchiverCommand {
  if (format === 'tar.gz') return { program: 'tar', args: ['-C', dir, '-czf', '-', '.'], okExitCodes: [0, 1], contentType: 'application/gzip' };
  return { program: 'bsdtar', args: ['-c', '-f', '-', '-b', '1', '--format', 'zip', '-s', '|^\\.$||S', '-s', '|^\\./||S', '-C', dir, '.'], okExitCodes: [0], contentType: 'application/zip' };
}

/**
 * Streams a directory of a mounted volume as tar.gz or zip, produced by the
 * system's GNU tar and bsdtar (no archive library in the hub). The tool
 * runs in the directory itself, so archive entries are relative to it. If
 * the reader goes away, the tool is killed.
 */
export async function archiveDirectory(volumeRoot: string, userPath: string, format: ArchiveFormat): Promise<DirectoryArchive> {
  const dir = await resolveInsideVolume(volumeRoot, userPath);
  if (!(await fs.stat(dir)).isDirectory()) throw new NotADirectoryPathError('not a directory', userPath);
  const command = commandFor(format, dir);
  const baseName = dir === (await fs.realpath(volumeRoot)) ? 'volume' : basename(dir);
  const suggestedFileName = `${baseName}.${format}`;

  const child = streamProcess(command.program, command.args, { cwd: dir, env: { LC_ALL: 'C.UTF-8' } });
  const output = format === 'zip' ? new ZipPaddingTrimmer() : new PassThrough();
  // end is ours to call: only the exit code says whether what was streamed is a whole archive.
  child.stdout.pipe(output, { end: false });

  let finished = false;
  const done = child.done.then(
    ({ code, signal, stderr }) => {
      finished = true;
      if (code !== null && command.okExitCodes.includes(code)) {
        output.end();
        return { warnings: stderr.split('\n').map((line) => line.trim()).filter(Boolean) };
      }
      const error = new Error(`${command.program} failed (${signal ? `killed by ${signal}` : `exit ${code}`}) archiving ${dir}${stderr.trim() ? `: ${stderr.trim()}` : ''}`);
      output.destroy(error);
      throw error;
    },
    (error: Error) => {
      finished = true;
      output.destroy(error);
      throw error;
    },
  );
  output.once('close', () => {
    if (!finished) child.kill();
  });
  // Callers that only consume the stream must not get an unhandled rejection.
  done.catch(() => undefined);
  return { stream: output, done, contentType: command.contentType, suggestedFileName };
}
