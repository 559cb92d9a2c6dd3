import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { basename, join } from 'node:path';
import { BuiltChain, MiB, buildStandardChain, contentMismatches, makeTempDir, qemuIo, removeTempDir } from '../../../test/fixtures/qcow2/chain-builder';
import { validateChain } from './chain-validator';
import { MergeStepName, applyMergeStep, beginMerge, findMergeJournals, planMergeOldest, resumeMerge, runMergeStep } from './merge-oldest';
import { runQemuImg } from '../../qemu/qemu-img';
import { info } from './qemu-img';

const STEPS: MergeStepName[] = ['commit', 'verify', 'replace', 'relink'];

describe('merging the oldest point, interrupted after every step (real images)', () => {
  let dir: string;
  let chain: BuiltChain;

  beforeEach(async () => {
    dir = await makeTempDir('merge');
    chain = await buildStandardChain(dir);
  });
  afterEach(async () => {
    await removeTempDir(dir);
  });

  async function begin(): Promise<string> {
    const plan = await planMergeOldest({ oldest: chain.files[0], next: chain.files[1], verify: true, context: { restorePointId: 'rp-1' } });
    expect(plan.journal).toMatchObject({ oldest: 'rp-1.qcow2', next: 'rp-2.qcow2', children: ['rp-3.qcow2'], steps: STEPS, completed: [] });
    return beginMerge(plan);
  }

  async function expectMergedChain(): Promise<void> {
    await expect(fs.stat(chain.files[0])).rejects.toThrow(/ENOENT/);
    expect((await info(chain.files[1])).backingFilename).toBeNull();
    expect(await contentMismatches([1, 2, 3].map((i) => [chain.files[i], chain.references[i]] as const))).toEqual([]);
    const links = chain.files.slice(1).map((file, i) => ({ file: basename(file), parentFile: i === 0 ? null : basename(chain.files[i]) }));
    expect(await validateChain(dir, links)).toMatchObject({ ok: true, problems: [] });
    expect(await findMergeJournals(dir)).toEqual([]);
  }

  it.each(STEPS.map((_, k) => k).concat(STEPS.length))('resumes after a crash once %i step(s) were done and recorded', async (k) => {
    const journal = await begin();
    for (const step of STEPS.slice(0, k)) await runMergeStep(journal, step);
    const recorded = JSON.parse(await fs.readFile(journal, 'utf8'));
    expect(recorded.completed).toEqual(STEPS.slice(0, k));
    expect(recorded.context).toEqual({ restorePointId: 'rp-1' });

    const result = await resumeMerge(journal);
    expect(result.stepsRun).toEqual(STEPS.slice(k));
    await expectMergedChain();
  });

  it.each(STEPS.map((step, i) => [step, i] as const))('resumes after a crash between doing step "%s" and recording it', async (step, i) => {
    const journal = await begin();
    for (const done of STEPS.slice(0, i)) await runMergeStep(journal, done);
    await applyMergeStep(dir, JSON.parse(await fs.readFile(journal, 'utf8')), step);

    const result = await resumeMerge(journal);
    expect(result.stepsRun).toEqual(STEPS.slice(i));
    await expectMergedChain();
  });

  it('resumes after a crash in the middle of the commit (some of N already written into F)', async () => {
    const journal = await begin();
    await qemuIo(chain.files[0], [{ pattern: 0x21, offset: MiB, length: MiB }, { pattern: 0x22, offset: 7 * MiB + 512 * 1024, length: 512 * 1024 }]);
    await resumeMerge(journal);
    await expectMergedChain();
  });

  it('relink repairs a child whose header no longer names N with format qcow2', async () => {
    const journal = await begin();
    for (const step of STEPS.slice(0, 3)) await runMergeStep(journal, step);
    await runQemuImg(['rebase', '-u', '-f', 'qcow2', '-b', 'rp-2.qcow2', '-F', 'raw', chain.files[2]]);
    await resumeMerge(journal);
    expect((await info(chain.files[2])).backingFormat).toBe('qcow2');
    await expectMergedChain();
  });

  it('refuses a second merge while one is unfinished in the directory', async () => {
    await begin();
    await expect(planMergeOldest({ oldest: chain.files[0], next: chain.files[1] })).rejects.toThrow(/unfinished merge .* resume \.merge-rp-1\.json first/);
  });

  it('fails cleanly while a qemu-nbd export holds the chain open, and finishes once it is gone', async () => {
    const socket = join(dir, 'nbd.sock');
    const pidFile = join(dir, 'nbd.pid');
    await new Promise<void>((resolve, reject) => {
      const child = spawn('qemu-nbd', ['-r', '-f', 'qcow2', '--persistent', '--shared=2', '-k', socket, '-x', 'rp-4', '--fork', `--pid-file=${pidFile}`, chain.files[3]], { stdio: 'ignore' });
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`qemu-nbd exited ${code}`))));
    });
    const pid = Number((await fs.readFile(pidFile, 'utf8')).trim());
    let journal: string;
    try {
      journal = await begin();
      await expect(resumeMerge(journal)).rejects.toThrow(/Failed to get "write" lock/);
      expect(await contentMismatches(chain.files.map((f, i) => [f, chain.references[i]] as const))).toEqual([]);
    } finally {
      process.kill(pid, 'SIGTERM');
      while (await isAlive(pid)) await new Promise((r) => setTimeout(r, 20));
    }
    await resumeMerge(journal);
    await expectMergedChain();
  });
});

/** The forked server is re-parented to PID 1, which reaps only every few seconds: a zombie counts as gone. */
async function isAlive(pid: number): Promise<boolean> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  return stat !== null && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}
