import { Injectable } from '@nestjs/common';
import { AggregateRepository } from '../eventing/aggregate-repository';
import { pointExportAggregate, PointExportState } from './point-export.aggregate';
import { pointExportStream } from './point-export.events';

/** An export as its events say right now: which leases a close must stop, and which hub process runs them. */
@Injectable()
export class PointExportStates {
  constructor(private readonly aggregates: AggregateRepository) {}

  async of(exportId: string): Promise<PointExportState> {
    return (await this.aggregates.load(pointExportStream(exportId), pointExportAggregate)).state;
  }
}
