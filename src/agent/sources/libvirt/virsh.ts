import { randomUUID } from 'node:crypto';
import { CommandSession, ProcessError, runProcess } from '../../../process';

const PROMPT = 'virsh # ';
/** Shells kept for commands of different domains at once (a freeze of one guest must not wait on another's job). */
const MAX_SHELLS = 4;
/** virsh's own line after libvirtd came back: information, not a failure of the command. */
const RECONNECTED = /^error: Reconnected to the hypervisor$/;
/** What a shell prints, at its next command, of a connection libvirtd closed meanwhile (a restart, a keepalive lost under load). */
const DISCONNECTED = /^error: Disconnected from \S+ due to .+$/;

/**
 * What a command wrote to stderr in a shell, less virsh's notes about its connection: a connection lost while the
 * shell was idle and then reconnected for this command is not this command's failure. A loss it could not recover
 * from is (virsh reports the command's own error too).
 */
export function commandMessages(stderr: string): { lines: string[]; failed: boolean } {
  const all = stderr.split('\n').filter(Boolean);
  const reconnected = all.some((l) => RECONNECTED.test(l));
  const lines = all.filter((l) => !RECONNECTED.test(l) && !(reconnected && DISCONNECTED.test(l)));
  return { lines, failed: lines.some((l) => l.startsWith('error: ')) };
}
const PROBE_TIMEOUT_MS = 10_000;

/**
 * virsh commands run in a few long-lived `virsh` shells rather than one program (and one connection to libvirtd)
 * per command: a backup makes some 30 calls, and a virsh start cost ~15 ms of CPU and wall time each, in the
 * freeze window too (docs/benchmarks.md, peer). Each command is followed by `echo --err MARK`: the mark on both
 * streams ends its answer, and whatever it wrote to stderr before the mark is its failure. A virsh whose shell does
 * not answer a probe so (another version) is left alone: every command then runs as its own program.
 */
export class Virsh {
  private readonly idle: CommandSession[] = [];
  private readonly waiting: ((shell: CommandSession | null) => void)[] = [];
  private count = 0;
  private shellWorks = true;

  constructor(
    private readonly binary: string,
    private readonly uri: string,
  ) {}

  async run(args: string[], timeoutMs: number): Promise<string> {
    const shell = this.shellWorks && !args.some((a) => /[\n\r]/.test(a)) ? await this.acquire() : null;
    if (!shell) return this.once(args, timeoutMs);
    try {
      return await this.inShell(shell, args, timeoutMs);
    } finally {
      this.release(shell);
    }
  }

  /**
   * Commands run back to back on one line of one shell: no round trip to this process between them, where each
   * cost a few milliseconds of a guest frozen for the middle one (docs/benchmarks.md, peer). As virsh runs a line,
   * each runs whatever the one before did; each one's failure (or null) comes back in its place. Without a working
   * shell they run one after the other as programs of their own.
   */
  async sequence(commands: string[][], timeoutMs: number): Promise<(Error | null)[]> {
    const shell = this.shellWorks && !commands.flat().some((a) => /[\n\r]/.test(a)) ? await this.acquire() : null;
    if (!shell) {
      const results: (Error | null)[] = [];
      for (const args of commands) results.push(await this.once(args, timeoutMs).then(() => null, (e: Error) => e));
      return results;
    }
    try {
      const marks = commands.map(() => `sendense-step-${randomUUID()}`);
      const line = commands.map((args, i) => `${args.map(quote).join(' ')} ; echo --err ${marks[i]}`).join(' ; ');
      const { stderr } = await this.exchange(shell, line, timeoutMs, commands[0]);
      let rest = stderr;
      return commands.map((args, i) => {
        const end = rest.indexOf(`error: ${marks[i]}\n`);
        if (end < 0) return failure(args, 'virsh did not run it');
        const { lines, failed } = commandMessages(rest.slice(0, end));
        rest = rest.slice(end + marks[i].length + 8);
        return failed ? failure(args, lines.join('\n')) : null;
      });
    } finally {
      this.release(shell);
    }
  }

  /** Ends the idle shells; a later command starts a new one. */
  close(): void {
    for (const shell of this.idle.splice(0)) {
      shell.kill();
      this.count--;
    }
  }

  private async once(args: string[], timeoutMs: number): Promise<string> {
    try {
      return (await runProcess(this.binary, ['-q', '-c', this.uri, ...args], { timeoutMs })).stdout;
    } catch (error) {
      if (error instanceof ProcessError) throw failure(args, error.stderr || error.message);
      throw error;
    }
  }

  private async inShell(shell: CommandSession, args: string[], timeoutMs: number): Promise<string> {
    const answer = await this.exchange(shell, args.map(quote).join(' '), timeoutMs, args);
    // virsh alone fails with its exit status; in its shell, a failed command is one that printed an error
    // (warnings, and the note that it reconnected, are not failures)
    const { lines, failed } = commandMessages(answer.stderr);
    if (failed) throw failure(args, lines.join('\n'));
    return answer.stdout;
  }

  /** Writes one line and reads its answer: what it printed on each stream, up to the mark that ends it. */
  private async exchange(shell: CommandSession, line: string, timeoutMs: number, args: string[]): Promise<{ stdout: string; stderr: string }> {
    const mark = `sendense-end-${randomUUID()}`;
    const endOut = `${PROMPT}echo --err ${mark}\n`;
    const endErr = `error: ${mark}\n`;
    const answer = await shell
      .send(`${line}\necho --err ${mark}\n`, (stdout, stderr) => {
        const o = stdout.indexOf(endOut);
        const e = stderr.indexOf(endErr);
        if (o < 0 || e < 0) return null;
        return { value: { stdout: stdout.slice(0, o), stderr: stderr.slice(0, e) }, stdoutChars: o + endOut.length, stderrChars: e + endErr.length };
      }, timeoutMs)
      .catch((error: Error) => {
        throw failure(args, error.message);
      });
    // virsh's line editor echoes each line it reads (redrawn with carriage returns when it is long) after its
    // prompt: the answer starts after that echo's end of line.
    const echoEnd = answer.stdout.indexOf('\n');
    if (!answer.stdout.startsWith(PROMPT) || echoEnd < 0) {
      shell.kill();
      throw failure(args, `virsh's shell answered in a form this agent does not read: ${JSON.stringify(answer.stdout.slice(0, 200))}`);
    }
    // The shell leaves the last line of some answers (echo's) unterminated, where virsh alone ends it.
    const stdout = answer.stdout.slice(echoEnd + 1);
    return { stdout: stdout && !stdout.endsWith('\n') ? `${stdout}\n` : stdout, stderr: answer.stderr };
  }

  /** A new shell, or none when this virsh's shell does not answer as inShell reads it (then every command runs alone). */
  private async open(): Promise<CommandSession | null> {
    const shell = new CommandSession(this.binary, ['-q', '-c', this.uri]);
    const probe = await this.inShell(shell, ['echo', 'sendense-probe'], PROBE_TIMEOUT_MS).catch(() => null);
    if (probe === 'sendense-probe\n') return shell;
    shell.kill();
    this.shellWorks = false;
    return null;
  }

  private async acquire(): Promise<CommandSession | null> {
    for (let shell = this.idle.pop(); shell; shell = this.idle.pop()) {
      if (shell.alive) return shell;
      this.count--;
    }
    if (this.count < MAX_SHELLS) {
      this.count++;
      const shell = await this.open();
      if (!shell) this.count--;
      return shell;
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(shell: CommandSession): void {
    if (!shell.alive) {
      this.count--;
      const next = this.waiting.shift();
      if (next) void this.acquire().then(next, () => next(null));
      return;
    }
    const next = this.waiting.shift();
    if (next) next(shell);
    else this.idle.push(shell);
  }
}

function failure(args: string[], message: string): Error {
  return new Error(`virsh ${args[0]}: ${message.replace(/^error: /gm, '').trim().split('\n').join(' ')}`);
}

/** virsh's shell splits on blanks and reads quotes and backslashes as a POSIX shell does. */
function quote(arg: string): string {
  return /^[A-Za-z0-9_./:=,+@%-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}
