import { fold } from '../../eventing/aggregate';
import { repositoryAggregate as repo, RepositoryCommand } from './repository.aggregate';
import { RepositoryDefinition, RepositoryEvent } from './repository.events';

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
});
