const WIDTH = 30;

export interface DiskLine {
  diskId: string;
  bytesDone: number;
  bytesPlanned: number;
  rate: number;
  done: boolean;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** One line per disk: a bar, bytes done of planned, and the rate. */
export function progressLine(d: DiskLine): string {
  const fraction = d.bytesPlanned > 0 ? Math.min(1, d.bytesDone / d.bytesPlanned) : d.done ? 1 : 0;
  const filled = Math.round(fraction * WIDTH);
  const bar = '#'.repeat(filled) + '-'.repeat(WIDTH - filled);
  return `${d.diskId.padEnd(10)} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}%  ${formatBytes(d.bytesDone)} / ${formatBytes(d.bytesPlanned)}  ${d.done ? 'done' : `${formatBytes(d.rate)}/s`}`;
}

/** Redraws a block of lines in place on a terminal; elsewhere prints them at most once a second, and the last time. */
export class ProgressDisplay {
  private drawn = 0;
  private lastPlain = 0;

  constructor(private readonly out: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr) {}

  draw(lines: string[], final: boolean): void {
    if (this.out.isTTY) {
      if (this.drawn) this.out.write(`\x1b[${this.drawn}A`);
      this.out.write(lines.map((l) => `\x1b[2K${l}\n`).join(''));
      this.drawn = lines.length;
    } else if (Date.now() - this.lastPlain > 1000 || final) {
      this.lastPlain = Date.now();
      this.out.write(lines.join('\n') + '\n');
    }
  }
}
