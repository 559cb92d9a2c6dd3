import { fold } from '../../eventing/aggregate';
import { refuseRoot, repositoryAggregate as repo, RepositoryCommand, rootRefusal } from './repository.aggregate';
import { DEFAULT_MAX_CHAIN_DEPTH, maxChainDepthOf, RepositoryDefinition, RepositoryEvent } from './repository.events';

const definition: RepositoryDefinition = { repositoryId: 'r1', name: 'main', kind: 'local', root: '/srv/backups', nfs: null, cifs: null };
const GiB = 1024 ** 3;

function run(commands: RepositoryCommand[]): RepositoryEvent[] {
  const events: RepositoryEvent[] = [];
  for (const c of commands) events.push(...repo.decide(c, fold(repo, events)));
  return events;
}

describe('repository rules', () => {
  it('registers once', () => {
    expect(run([{ kind: 'register', definition }]).map((e) => e.type)).toEqual(['RepositoryRegistered']);
    expect(() => run([{ kind: 'register', definition }, { kind: 'register', definition }])).toThrow(/already exists/);
  });

  it('records capacity only when it moved by 1% of the total, and low space only when the threshold is crossed', () => {
    const sample = (freeGiB: number): RepositoryCommand => ({ kind: 'sample', capacity: { totalBytes: 100 * GiB, freeBytes: freeGiB * GiB, usedBytes: (100 - freeGiB) * GiB }, thresholdPercent: 10 });
    const events = run([{ kind: 'register', definition }, sample(50), sample(49.5), sample(30), sample(9), sample(8.5), sample(5), sample(20)]);
    expect(events.map((e) => [e.type, (e.data as { freeBytes?: number }).freeBytes! / GiB])).toEqual([
      ['RepositoryRegistered', NaN],
      ['RepositoryCapacitySampled', 50],
      ['RepositoryCapacitySampled', 30],
      ['RepositoryCapacitySampled', 9],
      ['RepositoryLowSpace', 9],
      ['RepositoryCapacitySampled', 5],
      ['RepositoryCapacitySampled', 20],
      ['RepositorySpaceRecovered', 20],
    ]);
  });

  it('removes an active repository and then refuses to remove it again', () => {
    expect(run([{ kind: 'register', definition }, { kind: 'remove' }]).map((e) => e.type)).toEqual(['RepositoryRegistered', 'RepositoryRemoved']);
    expect(() => run([{ kind: 'register', definition }, { kind: 'remove' }, { kind: 'remove' }])).toThrow(/does not exist/);
  });

  it('registers with its first capacity sample in one decision', () => {
    const capacity = { totalBytes: 100 * GiB, freeBytes: 5 * GiB, usedBytes: 95 * GiB };
    expect(run([{ kind: 'register', definition, capacity, thresholdPercent: 10 }]).map((e) => e.type)).toEqual(['RepositoryRegistered', 'RepositoryCapacitySampled', 'RepositoryLowSpace']);
  });

  it('refuses a second repository with the same name or a root inside, around or equal to another one', () => {
    const existing = [{ repositoryId: 'r0', name: 'main', root: '/srv/backups' }];
    const other = (name: string, root: string): RepositoryCommand => ({ kind: 'register', definition: { ...definition, name, root }, existing });
    expect(() => run([other('main', '/srv/elsewhere')])).toThrow('a repository named main already exists (r0)');
    expect(() => run([other('inner', '/srv/backups/vm1')])).toThrow('/srv/backups/vm1 overlaps repository main at /srv/backups');
    expect(() => run([other('outer', '/srv')])).toThrow(/overlaps repository main/);
    expect(() => run([other('same', '/srv/backups')])).toThrow(/overlaps repository main/);
    expect(run([other('sibling', '/srv/backups2')]).map((e) => e.type)).toEqual(['RepositoryRegistered']);
  });

  it('refuses the file system root and the hub database directory as a repository root', () => {
    expect(() => refuseRoot('/', '/var/lib/sendense')).toThrow('/ cannot hold a repository');
    expect(() => refuseRoot('/var/lib/sendense/postgres/base', '/var/lib/sendense')).toThrow(/cannot hold a repository/);
    expect(() => refuseRoot('/var/lib/sendense/repositories/main', '/var/lib/sendense')).not.toThrow();
  });

  it.each([
    ['/etc', '/etc is a system directory'],
    ['/etc/sendense/repo', '/etc is a system directory'],
    ['/usr/local/backups', '/usr is a system directory'],
    ['/lib64', '/lib64 is a system directory'],
    ['/libx32/x', '/libx32 is a system directory'],
    ['/var/run/x', '/var/run is a system directory'],
    ['/var', 'shared by the whole host'],
    ['/var/lib', 'shared by the whole host'],
    ['/srv', 'shared by the whole host'],
    ['/var/lib/dpkg', '/var/lib/dpkg is the state directory of another program'],
    ['/var/lib/postgresql/backups', '/var/lib/postgresql is the state directory of another program'],
    ['/data/hub', "is or lies in the hub's data directory /data/hub"],
    ['/data/hub/run', "is or lies in the hub's data directory"],
    ['/data', "contains the hub's data directory"],
  ])('refuses %s as a repository root (%s)', (root, reason) => {
    expect(() => refuseRoot(root, '/data/hub')).toThrow(reason);
  });

  it.each(['/srv/backups', '/var/lib/sendense/repo', '/var/lib/sendense-repositories/main', '/data/hub/repositories/main', '/tmp/sendense-x', '/librarian/repo', '/mnt/nas/backups'])('lets %s hold a repository', (root) => {
    expect(rootRefusal(root, '/data/hub')).toBeNull();
  });

  it('refuses to remove a repository that still holds restore points', () => {
    expect(() => run([{ kind: 'register', definition }, { kind: 'remove', restorePoints: 3 }])).toThrow('repository main holds 3 restore point(s); delete them first');
  });

  it('registers a maxChainDepth from 2 to 1000 and refuses any other with the range in the message', () => {
    expect(run([{ kind: 'register', definition: { ...definition, maxChainDepth: 2 } }])[0].data).toMatchObject({ maxChainDepth: 2 });
    expect(run([{ kind: 'register', definition: { ...definition, maxChainDepth: 1000 } }])[0].data).toMatchObject({ maxChainDepth: 1000 });
    for (const maxChainDepth of [1, 0, 1001, 2.5, Number.NaN]) {
      expect(() => run([{ kind: 'register', definition: { ...definition, maxChainDepth } }])).toThrow(/maxChainDepth must be a whole number from 2 to 1000/);
    }
  });

  it('a repository registered before the setting existed has the default limit', () => {
    expect(maxChainDepthOf(fold(repo, run([{ kind: 'register', definition }])).definition!)).toBe(DEFAULT_MAX_CHAIN_DEPTH);
  });

  it('a chunks repository never bounds a chain (each point is whole) and refuses a limit', () => {
    const chunks = { ...definition, layout: 'chunks' as const };
    expect(maxChainDepthOf(fold(repo, run([{ kind: 'register', definition: chunks }])).definition!)).toBe(Number.MAX_SAFE_INTEGER);
    expect(() => run([{ kind: 'register', definition: chunks }, { kind: 'changeSettings', repositoryId: 'r1', maxChainDepth: 5 }])).toThrow(/its layout is chunks/);
  });

  it("records a chunks repository's measure, after the collection it follows; refuses one for a qcow2 or removed repository", () => {
    const chunks = { ...definition, layout: 'chunks' as const };
    const space = { pointDisks: 2, logicalBytes: 100, uniqueBytes: 60, liveBytes: 30, storedBytes: 40, collectableBytes: 5, deadBytesKept: 1 };
    const collected = { packsRemoved: 1, packsRepacked: 2, bytesFreed: 9, durationMs: 3 };
    expect(run([{ kind: 'register', definition: chunks }, { kind: 'recordChunks', space, collected: null }]).slice(1)).toEqual([{ type: 'RepositoryChunksMeasured', data: { repositoryId: 'r1', ...space } }]);
    expect(run([{ kind: 'register', definition: chunks }, { kind: 'recordChunks', space, collected }]).slice(1).map((e) => e.type)).toEqual(['RepositoryGarbageCollected', 'RepositoryChunksMeasured']);
    expect(() => run([{ kind: 'register', definition }, { kind: 'recordChunks', space, collected: null }])).toThrow('repository main has no chunk store: its layout is qcow2');
    expect(() => run([{ kind: 'register', definition: chunks }, { kind: 'remove' }, { kind: 'recordChunks', space, collected: null }])).toThrow('repository does not exist');
  });

  describe('changing maxChainDepth after registration', () => {
    const change = (maxChainDepth: number): RepositoryCommand => ({ kind: 'changeSettings', repositoryId: 'r1', maxChainDepth });

    it('records the new limit with the one it replaces, and later decisions read the new one', () => {
      const events = run([{ kind: 'register', definition: { ...definition, maxChainDepth: 7 } }, change(3)]);
      expect(events.at(-1)).toEqual({ type: 'RepositorySettingsChanged', data: { repositoryId: 'r1', maxChainDepth: 3, previous: 7 } });
      expect(maxChainDepthOf(fold(repo, events).definition!)).toBe(3);
      expect(run([{ kind: 'register', definition: { ...definition, maxChainDepth: 7 } }, change(3), change(50)]).at(-1)!.data).toEqual({ repositoryId: 'r1', maxChainDepth: 50, previous: 3 });
    });

    it('keeps the rest of the definition as registered', () => {
      const state = fold(repo, run([{ kind: 'register', definition: { ...definition, immutableDays: 5 } }, change(4)]));
      expect(state).toMatchObject({ status: 'active', definition: { ...definition, immutableDays: 5, maxChainDepth: 4 } });
    });

    it('appends nothing for the limit already in force, the default too for a repository registered before the setting existed', () => {
      expect(run([{ kind: 'register', definition: { ...definition, maxChainDepth: 7 } }, change(3), change(3)]).map((e) => e.type)).toEqual(['RepositoryRegistered', 'RepositorySettingsChanged']);
      expect(run([{ kind: 'register', definition }, change(DEFAULT_MAX_CHAIN_DEPTH)]).map((e) => e.type)).toEqual(['RepositoryRegistered']);
      expect(run([{ kind: 'register', definition }, change(10)]).at(-1)!.data).toEqual({ repositoryId: 'r1', maxChainDepth: 10, previous: DEFAULT_MAX_CHAIN_DEPTH });
    });

    it('refuses a limit outside 2 to 1000 as registering does', () => {
      for (const maxChainDepth of [1, 0, 1001, 2.5, Number.NaN]) {
        expect(() => run([{ kind: 'register', definition }, change(maxChainDepth)])).toThrow(/maxChainDepth must be a whole number from 2 to 1000/);
      }
    });

    it('refuses a repository that was never registered or was removed as not found', () => {
      expect(() => run([change(5)])).toThrow('repository r1 does not exist');
      expect(() => run([{ kind: 'register', definition }, { kind: 'remove' }, change(5)])).toThrow('repository r1 does not exist');
      const thrown = (() => {
        try {
          run([{ kind: 'register', definition }, { kind: 'remove' }, change(5)]);
        } catch (error) {
          return error;
        }
      })();
      expect(thrown).toMatchObject({ kind: 'not_found' });
    });
  });
});
