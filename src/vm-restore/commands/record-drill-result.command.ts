import { Command } from '../../eventing/command';
import type { DrillScreenshotRef } from '../restore.events';
import { RestoreResult } from './restore-result';

/** A drill's verdict, recorded once the agent removed its domain and the hub stopped the exports and kept the screenshot. */
export class RecordDrillResultCommand extends Command<RestoreResult> {
  constructor(
    readonly restoreId: string,
    readonly passed: boolean,
    readonly bootMs: number | null,
    readonly reason: string | null,
    readonly consistency: 'application' | 'crash' | null,
    readonly screenshot: DrillScreenshotRef | null,
  ) {
    super();
  }
}
