import type { CommandBus } from '@nestjs/cqrs';
import type { EventStore, ReadStreamOptions, RecordedEvent } from '../event-store/event-store.port';
import { Command } from './command';
import { DomainError } from './domain-error';
import { JobStepResult, JobStories } from './job-story';
import { currentContext, runWithContext } from './request-context';

class Step extends Command<JobStepResult<string>> {}

/** A job's stream as the store would give it, and a bus that answers each command with the events it "appended". */
function stories(events: { id: string; correlationId: string }[], appended: string[][]) {
  const reads: [string, ReadStreamOptions | undefined][] = [];
  const store = {
    readStream: async (stream: string, options?: ReadStreamOptions) => {
      reads.push([stream, options]);
      const ordered = options?.direction === 'backwards' ? [...events].reverse() : events;
      return ordered.slice(0, options?.maxCount ?? ordered.length).map((e) => ({ id: e.id, metadata: { correlationId: e.correlationId } }) as unknown as RecordedEvent);
    },
  } as unknown as EventStore;
  const seen: { causationId?: string; correlationId: string }[] = [];
  const commands = {
    execute: async () => {
      const { causationId, correlationId } = currentContext();
      seen.push({ causationId, correlationId });
      const eventIds = appended.shift() ?? [];
      return { eventIds, state: `after ${eventIds.join(',') || 'nothing'}` };
    },
  } as unknown as CommandBus;
  return { jobs: new JobStories<string>(store, commands, (id) => `job-${id}`, 'backup job'), reads, seen };
}

describe('JobStories', () => {
  it("opens a job's story at its stream's first event: its correlation id, and that event as the first cause", async () => {
    const { jobs, reads } = stories([{ id: 'e1', correlationId: 'c-1' }, { id: 'e2', correlationId: 'c-1' }], []);
    expect(await jobs.open('j1')).toEqual({ correlationId: 'c-1', cause: 'e1' });
    expect(reads).toEqual([['job-j1', { maxCount: 1 }]]);
  });

  it('refuses a job that has no stream as not found, naming it', async () => {
    const { jobs } = stories([], []);
    const refused = jobs.open('j9');
    await expect(refused).rejects.toBeInstanceOf(DomainError);
    await expect(refused).rejects.toMatchObject({ kind: 'not_found', message: 'backup job j9 does not exist' });
  });

  it("sends each command caused by the story's latest event, under its correlation id, and makes the last event it appended the next cause", async () => {
    const { jobs, seen } = stories([{ id: 'e1', correlationId: 'c-1' }], [['e2', 'e3'], [], ['e4']]);
    const story = await jobs.open('j1');
    // a step runs under the job's story whatever context called it
    await runWithContext({ correlationId: 'someone-else', actor: 'alice', causationId: 'x' }, async () => {
      expect(await jobs.send(story, new Step())).toBe('after e2,e3');
      expect(await jobs.send(story, new Step())).toBe('after nothing');
      expect(await jobs.send(story, new Step())).toBe('after e4');
    });
    expect(seen).toEqual([
      { causationId: 'e1', correlationId: 'c-1' },
      { causationId: 'e3', correlationId: 'c-1' },
      { causationId: 'e3', correlationId: 'c-1' },
    ]);
    expect(story.cause).toBe('e4');
  });

  it("catches up with the job's newest event (one an agent's report or a cancel appended)", async () => {
    const { jobs, reads } = stories([{ id: 'e1', correlationId: 'c-1' }, { id: 'e7', correlationId: 'c-1' }], []);
    const story = await jobs.open('j1');
    await jobs.catchUp('j1', story);
    expect(story.cause).toBe('e7');
    expect(reads.at(-1)).toEqual(['job-j1', { direction: 'backwards', maxCount: 1 }]);
  });

  it('runs work within the story as the system, and a side effect step as caused by the latest event', async () => {
    const { jobs } = stories([], []);
    const story = { correlationId: 'c-2', cause: 'e5' };
    expect(await jobs.within(story, async () => currentContext())).toEqual({ correlationId: 'c-2', actor: 'system', causationId: 'e5' });
    expect(await jobs.step(story, async () => currentContext())).toEqual({ correlationId: 'c-2', actor: 'system', causationId: 'e5' });
  });
});
