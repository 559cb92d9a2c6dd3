import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../process/run-process';
import { terminateProcess } from '../process/child-process';
import { buildSocketExportArgs, IO_URING } from './qemu-nbd-args';
import { launchQemuNbd } from './qemu-nbd-launcher';

describe('launchQemuNbd with a read-only export (real qemu-nbd)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-launcher-'));
    await runProcess('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'd.qcow2'), '1M']);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const exportOf = (name: string) => {
    const socket = join(dir, `${name}.sock`);
    const pidFile = join(dir, `${name}.pid`);
    const args = buildSocketExportArgs({ file: join(dir, 'd.qcow2'), format: 'qcow2', socket, exportName: 'd', shared: 1 }, pidFile);
    return { args, pidFile, listen: { socket }, logFile: join(dir, `${name}.log`), detached: false };
  };
  const argvOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');

  it('reads through io_uring where the kernel allows it', async () => {
    const launch = exportOf('plain');
    expect(launch.args).toContain(IO_URING);
    const handle = await launchQemuNbd(launch, { readyTimeoutMs: 10_000 });
    try {
      expect(argvOf(handle.pid)).toContain(IO_URING);
      const { stdout } = await runProcess('nbdinfo', ['--size', `nbd+unix:///d?socket=${launch.listen.socket}`]);
      expect(stdout.trim()).toBe(String(1024 * 1024));
    } finally {
      await terminateProcess(handle, 1_000, 'qemu-nbd');
    }
  });

  it('starts again without io_uring where qemu-nbd refuses it, and later exports no longer ask for it', async () => {
    // qemu-nbd's own words where io_uring_setup is forbidden (seccomp, kernel.io_uring_disabled).
    const refusing = join(dir, 'qemu-nbd-without-io-uring');
    writeFileSync(refusing, `#!/bin/sh\nfor a in "$@"; do [ "$a" = "${IO_URING}" ] && { echo "qemu-nbd: Unable to use io_uring: failed to init linux io_uring ring: Operation not permitted" >&2; exit 1; }; done\nexec qemu-nbd "$@"\n`);
    chmodSync(refusing, 0o755);
    const launch = exportOf('refused');
    expect(launch.args).toContain(IO_URING);
    const handle = await launchQemuNbd({ ...launch, binary: refusing }, { readyTimeoutMs: 10_000 });
    try {
      expect(argvOf(handle.pid)).not.toContain(IO_URING);
      const { stdout } = await runProcess('nbdinfo', ['--size', `nbd+unix:///d?socket=${launch.listen.socket}`]);
      expect(stdout.trim()).toBe(String(1024 * 1024));
    } finally {
      await terminateProcess(handle, 1_000, 'qemu-nbd');
    }
    expect(exportOf('later').args).not.toContain(IO_URING);
  });
});
