import { spawn } from 'node:child_process';
import { environment } from './run-process';
import { killOnExit } from './child-process';

/** What a session's reader takes from the output so far: its answer and how much of each stream it used. */
export interface Taken<T> {
  value: T;
  stdoutChars: number;
  stderrChars: number;
}

/**
 * A program kept running and fed command lines on stdin (virsh's shell), its output read as it arrives: one
 * program start and one connection for many commands. It dies with us. One command at a time: callers queue.
 */
export class CommandSession {
  private stdout = '';
  private stderr = '';
  private changed: () => void = () => undefined;
  private ended: string | null = null;
  private readonly child;

  constructor(program: string, args: readonly string[]) {
    this.child = spawn(program, [...args], { env: environment(undefined), stdio: ['pipe', 'pipe', 'pipe'] });
    killOnExit(this.child);
    // Idle shells must not keep a process alive; a command waiting for its answer is held by its timer.
    this.child.unref();
    for (const stream of [this.child.stdin, this.child.stdout, this.child.stderr]) (stream as unknown as { unref?: () => void }).unref?.();
    this.child.stdout.setEncoding('utf8').on('data', (chunk: string) => this.take(() => (this.stdout += chunk)));
    this.child.stderr.setEncoding('utf8').on('data', (chunk: string) => this.take(() => (this.stderr += chunk)));
    this.child.stdin.on('error', () => undefined); // a program that exited: the next read says so
    this.child.once('error', (error) => this.take(() => (this.ended = `${program} could not be started: ${error.message}`)));
    this.child.once('close', (code, signal) => this.take(() => (this.ended ??= `${program} exited (${signal ?? `code ${code}`})`)));
  }

  get alive(): boolean {
    return this.ended === null;
  }

  /**
   * Writes `input`, then waits until `read` finds its answer in the output so far. After `timeoutMs` the program
   * is killed (a command it will never answer leaves it unusable) and this rejects.
   */
  async send<T>(input: string, read: (stdout: string, stderr: string) => Taken<T> | null, timeoutMs: number): Promise<T> {
    if (this.ended !== null) throw new Error(this.ended);
    this.child.stdin.write(input);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.changed = () => undefined;
        this.kill();
        reject(new Error(`no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.changed = () => {
        const taken = read(this.stdout, this.stderr);
        if (taken === null && this.ended === null) return;
        clearTimeout(timer);
        this.changed = () => undefined;
        if (taken === null) return reject(new Error(this.ended!));
        this.stdout = this.stdout.slice(taken.stdoutChars);
        this.stderr = this.stderr.slice(taken.stderrChars);
        resolve(taken.value);
      };
      this.changed();
    });
  }

  kill(): void {
    this.ended ??= 'killed';
    this.child.kill('SIGKILL');
  }

  private take(update: () => void): void {
    update();
    this.changed();
  }
}
