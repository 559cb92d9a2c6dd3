import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, copyFileSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { prng } from '../../test/support/prng';

const run = promisify(execFile);
const MiB = 1024 * 1024;

export interface FleetOptions {
  dir: string;
  /** The template disk's size. */
  templateMib: number;
  /** Real files copied from this machine into the template, and generated logs and text on top of them. */
  realFilesMib: number;
  textMib: number;
  vms: number;
  /** Each VM's own data on top of the template, as a share of the disk: half random, half text. */
  ownPercent: number;
  /** Each day, the share of a VM's files rewritten (a few places of each changed), and its logs appended to. */
  dailyFilesPercent: number;
  dailyLogMib: number;
}

/** Words of log lines: the repetition of real logs (compressible), with numbers and ids that differ line by line. */
const WORDS = 'connection accepted closed from user session opened for root systemd started stopped unit service kernel eth0 link up down timeout retry request GET POST status 200 404 500 bytes sent received backup job completed failed error warning info debug cache miss hit query took ms'.split(' ');

function logLines(random: () => number, host: string, bytes: number, start: number): string {
  const lines: string[] = [];
  let size = 0;
  for (let n = 0; size < bytes; n++) {
    const when = new Date(Date.UTC(2026, 10, 1) + (start + n) * 1013).toISOString();
    const words = Array.from({ length: 6 + Math.floor(random() * 10) }, () => WORDS[Math.floor(random() * WORDS.length)]).join(' ');
    const line = `${when} ${host} app[${1000 + Math.floor(random() * 30000)}]: ${words} id=${Math.floor(random() * 1e9).toString(16)} n=${start + n}\n`;
    lines.push(line);
    size += line.length;
  }
  return lines.join('');
}

/** Regular files under `root`, in a stable order, up to `budget` bytes. */
function realFiles(roots: string[], budget: number): string[][] {
  const picked: string[][] = [];
  let total = 0;
  const walk = (root: string, dir: string) => {
    let entries: string[];
    try {
      entries = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of entries) {
      if (total >= budget) return;
      const path = join(dir, name);
      const st = lstatSync(path, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(root, path);
      else if (st.isFile() && st.size > 0 && st.size < 64 * MiB) {
        picked.push([path, relative(root, path)]);
        total += st.size;
      }
    }
  };
  for (const root of roots) walk(root, root);
  return picked;
}

async function mounted<T>(image: string, mountpoint: string, work: () => T | Promise<T>): Promise<T> {
  await run('mount', ['-o', 'loop', image, mountpoint]);
  try {
    return await work();
  } finally {
    await run('umount', [mountpoint]);
  }
}

/**
 * A fleet as the issue describes it: one template disk (a real ext4 with real files of this machine and generated
 * logs and text), VMs cloned from it each with data of its own, and days on which every VM rewrites some of its files
 * and appends to its logs. Disks are raw files changed through a loop mount: every tool reads the same bytes.
 */
export class Fleet {
  readonly template: string;
  private readonly mnt: string;
  private files: string[] = [];

  constructor(private readonly options: FleetOptions) {
    this.template = join(options.dir, 'template.raw');
    this.mnt = join(options.dir, 'mnt');
  }

  image(vm: number): string {
    return join(this.options.dir, `vm-${vm}.raw`);
  }

  async build(): Promise<void> {
    const { dir, templateMib, realFilesMib, textMib, vms } = this.options;
    const tree = join(dir, 'tree');
    mkdirSync(this.mnt, { recursive: true });
    for (const [from, to] of realFiles(['/usr/share', '/usr/lib'], realFilesMib * MiB)) {
      mkdirSync(join(tree, 'usr', to, '..'), { recursive: true });
      copyFileSync(from, join(tree, 'usr', to));
    }
    const random = prng(1);
    mkdirSync(join(tree, 'var/log/app'), { recursive: true });
    for (let i = 0, left = textMib * MiB; left > 0; i++, left -= 8 * MiB) writeFileSync(join(tree, `var/log/app/app-${i}.log`), logLines(random, 'template', Math.min(8 * MiB, left), i * 100_000));
    await run('truncate', ['-s', `${templateMib}M`, this.template]);
    await run('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', '-d', tree, this.template]);
    await run('rm', ['-rf', tree]);
    this.files = await mounted(this.template, this.mnt, () => this.list(this.mnt));
    for (let vm = 0; vm < vms; vm++) {
      await run('cp', ['--sparse=always', this.template, this.image(vm)]);
      await this.own(vm);
    }
  }

  private list(root: string): string[] {
    const out: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir).sort()) {
        const path = join(dir, name);
        const st = lstatSync(path);
        if (st.isDirectory() && name !== 'lost+found') walk(path);
        else if (st.isFile()) out.push(relative(root, path));
      }
    };
    walk(root);
    return out;
  }

  /** The VM's own data: half random (what compresses not at all), half text of its own. */
  private async own(vm: number): Promise<void> {
    const bytes = Math.floor((this.options.templateMib * MiB * this.options.ownPercent) / 100);
    const random = prng(1000 + vm);
    await mounted(this.image(vm), this.mnt, () => {
      mkdirSync(join(this.mnt, 'srv/data'), { recursive: true });
      for (let i = 0, left = bytes / 2; left > 0; i++, left -= 4 * MiB) writeFileSync(join(this.mnt, `srv/data/blob-${i}.bin`), randomBytes(Math.min(4 * MiB, left)));
      for (let i = 0, left = bytes / 2; left > 0; i++, left -= 4 * MiB) writeFileSync(join(this.mnt, `srv/data/text-${i}.log`), logLines(random, `vm-${vm}`, Math.min(4 * MiB, left), i * 100_000));
    });
  }

  /** A day of a VM's life: some files rewritten in a few places each (new blocks, as a package update), logs appended. */
  async day(vm: number, day: number): Promise<void> {
    const random = prng(vm * 1000 + day);
    await mounted(this.image(vm), this.mnt, () => {
      const files = [...this.files, ...this.list(join(this.mnt, 'srv')).map((f) => join('srv', f))];
      const count = Math.max(1, Math.round((files.length * this.options.dailyFilesPercent) / 100));
      for (let i = 0; i < count; i++) {
        const file = join(this.mnt, files[Math.floor(random() * files.length)]);
        const data = readFileSync(file);
        for (let k = 0; k < 4 && data.length; k++) {
          const at = Math.floor(random() * data.length);
          randomBytes(Math.min(256, data.length - at)).copy(data, at);
        }
        writeFileSync(`${file}.new`, data);
        renameSync(`${file}.new`, file);
      }
      appendFileSync(join(this.mnt, 'var/log/app/app-0.log'), logLines(random, `vm-${vm}`, this.options.dailyLogMib * MiB, day * 1_000_000));
    });
  }
}
