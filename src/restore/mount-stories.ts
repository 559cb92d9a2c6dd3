import { Inject, Injectable } from '@nestjs/common';
import { EVENT_STORE, EventStore } from '../event-store/event-store.port';
import { AggregateRepository } from '../eventing/aggregate-repository';
import { restoreMountAggregate, RestoreMountState } from './restore-mount.aggregate';
import { restoreMountStream } from './restore-mount.events';

export interface MountStory {
  /** The correlation id of the request that created the mount: every step of the mount's life carries it. */
  correlationId: string;
  /** The latest event of the mount: what a step taken now is caused by. */
  lastEventId: string;
}

/** Reads a mount's events back, for steps taken long after the request (a release at restart, by idle expiry, on DELETE). */
@Injectable()
export class MountStories {
  constructor(
    @Inject(EVENT_STORE) private readonly store: EventStore,
    private readonly aggregates: AggregateRepository,
  ) {}

  async of(mountId: string): Promise<MountStory | null> {
    const stream = restoreMountStream(mountId);
    const [first] = await this.store.readStream(stream, { maxCount: 1 });
    if (!first) return null;
    const [last] = await this.store.readStream(stream, { direction: 'backwards', maxCount: 1 });
    return { correlationId: first.metadata.correlationId, lastEventId: (last ?? first).id };
  }

  async state(mountId: string): Promise<RestoreMountState> {
    return (await this.aggregates.load(restoreMountStream(mountId), restoreMountAggregate)).state;
  }
}
