import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RestoreJournal } from './restore-journal';

describe('restore journals an agent finds at its start', () => {
  it('takes the whole journals and removes the temp file of a write a kill interrupted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sendense-journal-'));
    try {
      const journal = await RestoreJournal.create(dir, 'r1');
      await journal.addFile('/srv/web-vda.qcow2');
      // the kill came while the next version was being written: the journal before it is whole beside it
      writeFileSync(join(dir, 'restore-r1.json.tmp'), '{"restoreId":"r1","files":["/srv/web-vda.qc');
      const found = await RestoreJournal.leftovers(dir);
      expect(found.map((j) => j.state)).toEqual([expect.objectContaining({ restoreId: 'r1', files: ['/srv/web-vda.qcow2'] })]);
      expect(readdirSync(dir)).toEqual(['restore-r1.json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a change whose write fails is not taken: the journal in memory stays as the file has it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sendense-journal-'));
    try {
      const journal = await RestoreJournal.create(dir, 'r2');
      // where the next version is written first: a directory, so the write fails (as on a full disk)
      mkdirSync(join(dir, 'restore-r2.json.tmp'));
      await expect(journal.record({ phase: 'committing', renames: [{ from: '/srv/a.new', to: '/srv/a' }] })).rejects.toThrow();
      expect(journal.state).toMatchObject({ phase: 'writing', renames: [] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
