import { Query } from '@nestjs/cqrs';
import { VmProtection } from '../protection-report';

export interface ProtectionReport {
  /** The moment the report reads as of (the request's `at`, or now). */
  at: string;
  /** True when rebuilt from the events recorded up to `at` rather than read from the live read model. */
  replayed: boolean;
  vms: VmProtection[];
}

/** `at` null: now, from the live read model; otherwise as the report read at that moment, rebuilt from the events recorded until then. */
export class ProtectionReportQuery extends Query<ProtectionReport> {
  constructor(
    readonly at: Date | null,
    readonly now: Date,
  ) {
    super();
  }
}
