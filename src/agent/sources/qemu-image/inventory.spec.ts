import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InventoryError } from './errors';
import { loadInventoryFile, parseInventory } from './inventory';

function problemsOf(doc: unknown): string[] {
  try {
    parseInventory(doc);
  } catch (error) {
    expect(error).toBeInstanceOf(InventoryError);
    return (error as InventoryError).problems;
  }
  throw new Error('expected an InventoryError');
}

describe('parseInventory', () => {
  it('accepts the documented shape, with an optional pinned format', () => {
    const doc = {
      vms: [
        { id: 'pgtest1', name: 'pgtest1', disks: [{ id: 'disk0', path: '/abs/disk0.qcow2' }] },
        { id: 'web.01_a-b', name: 'Web server', disks: [{ id: 'd0', path: '/vm/web.img', format: 'raw' }, { id: 'd1', path: '/vm/web-data.qcow2', format: 'qcow2' }] },
      ],
    };
    expect(parseInventory(doc)).toEqual(doc);
  });

  it('accepts an empty inventory', () => {
    expect(parseInventory({ vms: [] })).toEqual({ vms: [] });
  });

  it('lists every problem of a document at once, each with where it is', () => {
    const problems = problemsOf({
      vms: [
        { id: 'ok1', name: 'ok', disks: [{ id: 'disk0', path: 'relative/disk0.qcow2' }] },
        { id: '-bad', name: '', disks: [] },
        { id: 'ok1', name: 'dup', disks: [{ id: 'd', path: '/x/a.qcow2' }, { id: 'd', path: '/x/a.qcow2', format: 'vmdk', size: 3 }] },
        { id: 'a'.repeat(129), name: 'long', disks: [{ id: 'd0', path: 42 }] },
        'not a vm',
      ],
      extra: true,
    });
    expect(problems).toEqual([
      'unknown key "extra" at the top level (expected only "vms")',
      'vms[0] (VM ok1).disks[0].path: must be an absolute path (got "relative/disk0.qcow2")',
      expect.stringMatching(/^vms\[1\]\.id: "-bad" must match/),
      'vms[1].name: must be a non-empty string of at most 256 characters (got "")',
      'vms[1].disks: must be a non-empty array (got an array)',
      'vms[2].id: duplicate VM id "ok1" (also vms[0])',
      'vms[2] (VM ok1).disks[1]: unknown key "size" (expected id, path, format)',
      'vms[2] (VM ok1).disks[1].id: duplicate disk id "d" in this VM (also disks[0])',
      'vms[2] (VM ok1).disks[1].path: "/x/a.qcow2" is already used by vms[2] (VM ok1) disk d (a disk file can belong to one VM disk only)',
      'vms[2] (VM ok1).disks[1].format: must be one of qcow2, raw when given (got "vmdk")',
      expect.stringMatching(/^vms\[3\]\.id: "a{20,}.*" must match/),
      'vms[3].disks[0].path: must be a non-empty string (got number 42)',
      'vms[4]: must be an object with id, name and disks (got "not a vm")',
    ]);
  });

  it('refuses ids outside ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$ and accepts the longest allowed', () => {
    expect(() => parseInventory({ vms: [{ id: 'a'.repeat(128), name: 'x', disks: [{ id: 'd', path: '/d' }] }] })).not.toThrow();
    for (const id of ['', '.hidden', 'a b', 'a/b', 'ä', 'a'.repeat(129), 7]) {
      expect(problemsOf({ vms: [{ id, name: 'x', disks: [{ id: 'd', path: '/d' }] }] })[0]).toMatch(/^vms\[0\]\.id: /);
    }
  });

  it('refuses a disk path shared by two VMs (also when spelled differently)', () => {
    expect(
      problemsOf({
        vms: [
          { id: 'a', name: 'a', disks: [{ id: 'd', path: '/vm/disk.qcow2' }] },
          { id: 'b', name: 'b', disks: [{ id: 'd', path: '/vm//./disk.qcow2' }] },
        ],
      }),
    ).toEqual(['vms[1] (VM b).disks[0].path: "/vm//./disk.qcow2" is already used by vms[0] (VM a) disk d (a disk file can belong to one VM disk only)']);
  });

  it('says what it expected when the document is not an object or has no vms array', () => {
    expect(problemsOf([])).toEqual(['the document must be an object like {"vms": [...]} (got an array)']);
    expect(problemsOf({ vms: {} })).toEqual(['vms: must be an array (got an object)']);
  });

  it('formats the error message as a list', () => {
    expect(() => parseInventory({ vms: [{ id: 'a', name: 'a', disks: [{ id: 'd', path: 'x' }] }] })).toThrow(
      'invalid inventory (1 problem):\n  - vms[0] (VM a).disks[0].path: must be an absolute path (got "x")',
    );
  });
});

describe('loadInventoryFile', () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'sendense-inv-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reports unreadable files and JSON syntax errors as inventory problems', async () => {
    await expect(loadInventoryFile(join(dir, 'missing.json'))).rejects.toThrow(/cannot read inventory file .*missing\.json/);
    writeFileSync(join(dir, 'bad.json'), '{"vms": [');
    await expect(loadInventoryFile(join(dir, 'bad.json'))).rejects.toThrow(/is not valid JSON/);
    writeFileSync(join(dir, 'ok.json'), JSON.stringify({ vms: [{ id: 'v', name: 'v', disks: [{ id: 'd', path: '/d.qcow2' }] }] }));
    await expect(loadInventoryFile(join(dir, 'ok.json'))).resolves.toEqual({ vms: [{ id: 'v', name: 'v', disks: [{ id: 'd', path: '/d.qcow2' }] }] });
  });
});
