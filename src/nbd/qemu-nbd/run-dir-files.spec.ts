import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PidFileRecord } from './qemu-nbd.types';
import { RunDirFiles } from './run-dir-files';

describe('RunDirFiles', () => {
  let dir: string;
  let files: RunDirFiles;
  const record: PidFileRecord = { leaseId: 'lease-1', pid: 4242, port: 10901, file: '/x.qcow2', args: ['-f', 'qcow2', '/x.qcow2'], startedAt: '2026-11-22T00:00:00.000Z' };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sendense-rundir-'));
    files = new RunDirFiles(dir);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes a record without leaving its temporary file and reads it back', () => {
    files.writeRecord(record);
    expect(readdirSync(dir)).toEqual(['qemu-nbd-lease-1.json']);
    expect(files.readRecords()).toEqual({ records: [record], problems: [] });
  });

  it('skips and reports corrupt records and records filed under another lease', () => {
    files.writeRecord(record);
    writeFileSync(join(dir, 'qemu-nbd-broken.json'), '{"leaseId":');
    writeFileSync(join(dir, 'qemu-nbd-other.json'), JSON.stringify(record));
    writeFileSync(join(dir, 'unrelated.json'), '{}');
    const { records, problems } = files.readRecords();
    expect(records).toEqual([record]);
    expect(problems).toHaveLength(2);
  });

  it('reads nothing from a run dir that does not exist yet', () => {
    expect(new RunDirFiles(join(dir, 'missing')).readRecords()).toEqual({ records: [], problems: [] });
  });

  it('returns the last 20 lines of stderr', () => {
    writeFileSync(files.logPath('lease-1'), Array.from({ length: 30 }, (_, i) => `line ${i}`).join('\n') + '\n');
    const tail = files.stderrTail('lease-1').split('\n');
    expect(tail).toHaveLength(20);
    expect(tail[0]).toBe('line 10');
    expect(tail[19]).toBe('line 29');
    expect(files.stderrTail('no-such-lease')).toBe('');
  });

  it('removes process files and the record separately', () => {
    files.writeRecord(record);
    writeFileSync(files.qemuPidPath('lease-1'), '4242\n');
    writeFileSync(files.logPath('lease-1'), '');
    files.removeProcessFiles('lease-1');
    expect(readdirSync(dir)).toEqual(['qemu-nbd-lease-1.json']);
    files.removeRecord('lease-1');
    expect(existsSync(files.recordPath('lease-1'))).toBe(false);
  });
});
