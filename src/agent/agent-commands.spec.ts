import { join } from 'node:path';
import { MAX_SOCKET_PATH } from '../process/socket-path';
import { runAgent } from './agent-commands';
import { RESTORE_SOCKET } from './restore-runner';
import { JOB_SOCKET } from './sources/libvirt';

describe('sendense agent run: an agent dir too deep for its sockets', () => {
  /** A dir of `length` bytes that does not exist: nothing is created when the run is refused. */
  const dirOf = (length: number) => `/nonexistent-${'d'.repeat(length - '/nonexistent-'.length)}`;

  it('a libvirt agent is refused at start when a backup job socket below its dir would pass the limit, with the length that fits', async () => {
    const room = MAX_SOCKET_PATH - Buffer.byteLength(join('libvirt', JOB_SOCKET)) - 1;
    await expect(runAgent(['--libvirt'], { SENDENSE_AGENT_DIR: dirOf(room + 1) })).rejects.toThrow(
      `sendense agent run: SENDENSE_AGENT_DIR is ${room + 1} bytes long, and the Unix sockets made below it (as ${dirOf(room + 1)}/libvirt/${JOB_SOCKET}) would pass the ${MAX_SOCKET_PATH} bytes a socket's path may have: choose a directory of at most ${room} bytes`,
    );
    // one byte less goes on to the next check: the agent was never registered there
    await expect(runAgent(['--libvirt'], { SENDENSE_AGENT_DIR: dirOf(room) })).rejects.toThrow(/agent\.json does not exist/);
  });

  it('an agent without libvirt needs room for a disk restore socket only', async () => {
    const room = MAX_SOCKET_PATH - Buffer.byteLength(join('restores', RESTORE_SOCKET)) - 1;
    await expect(runAgent(['--inventory', '/nonexistent.json'], { SENDENSE_AGENT_DIR: dirOf(room + 1) })).rejects.toThrow(`choose a directory of at most ${room} bytes`);
    await expect(runAgent(['--inventory', '/nonexistent.json'], { SENDENSE_AGENT_DIR: dirOf(room) })).rejects.toThrow(/agent\.json does not exist/);
  });
});
