import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/**
 * The two lanes `npm test` runs at once (jest.config.js, test/lanes.js) share nothing machine-wide: every file runs
 * in exactly one lane, every file that needs libvirtd runs in the system lane, and no two files give hubs or
 * exports overlapping fixed port ranges.
 */
const ROOT = join(__dirname, '..');
const listed = (lane?: string) => {
  const env = { ...process.env, SENDENSE_TEST_LANE: lane };
  if (!lane) delete env.SENDENSE_TEST_LANE;
  return execFileSync(process.execPath, [require.resolve('jest/bin/jest'), '--listTests'], { cwd: ROOT, env, encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((file) => relative(ROOT, file))
    .sort();
};

describe('test lanes', () => {
  const all = listed();
  const system = listed('system');
  const units = listed('units');

  it('runs every file in exactly one lane', () => {
    expect(system.filter((file) => units.includes(file))).toEqual([]);
    expect([...system, ...units].sort()).toEqual(all);
    expect(system.length).toBeGreaterThan(5);
    expect(units.length).toBeGreaterThan(100);
  });

  it('runs every file that needs libvirtd in the system lane', () => {
    const needsLibvirt = all.filter((file) => file !== 'test/lanes.spec.ts' && /libvirt-host|libvirt-lab|libvirt-guest|ensureLibvirt|virtlogd/.test(readFileSync(join(ROOT, file), 'utf8')));
    expect(needsLibvirt.length).toBeGreaterThan(5);
    expect(needsLibvirt.filter((file) => !system.includes(file))).toEqual([]);
  });

  it('gives no two files overlapping fixed port ranges for their hubs and exports', () => {
    // unit specs start no hub: their ranges are configuration under test
    const ranges = all.filter((file) => /\.(int|e2e)\.spec\.ts$/.test(file)).flatMap((file) =>
      [...readFileSync(join(ROOT, file), 'utf8').matchAll(/SENDENSE_NBD_PORTS: '(\d+)-(\d+)'/g)].map((m) => ({ file, first: Number(m[1]), last: Number(m[2]) })),
    );
    expect(ranges.length).toBeGreaterThan(5);
    const clashes = ranges.flatMap((a, i) => ranges.slice(i + 1).filter((b) => b.file !== a.file && a.first <= b.last && b.first <= a.last).map((b) => `${a.file} ${a.first}-${a.last} and ${b.file} ${b.first}-${b.last}`));
    expect(clashes).toEqual([]);
    // a BackupLab's range (test/support/backup-lab.ts) depends on its lane, and no file's own range overlaps either
    const lab = /'units' \? \{ first: (\d+), last: (\d+) \} : \{ first: (\d+), last: (\d+) \}/.exec(readFileSync(join(ROOT, 'test/support/backup-lab.ts'), 'utf8'))!;
    const labRanges = [[Number(lab[1]), Number(lab[2])], [Number(lab[3]), Number(lab[4])]];
    expect(labRanges[0][1] < labRanges[1][0] || labRanges[1][1] < labRanges[0][0]).toBe(true);
    expect(ranges.filter((r) => labRanges.some(([first, last]) => r.first <= last && first <= r.last)).map((r) => r.file)).toEqual([]);
  });
});
