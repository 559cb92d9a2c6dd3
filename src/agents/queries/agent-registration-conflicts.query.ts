import { Query } from '@nestjs/cqrs';

/** Whether an agent already holds this name, or this key. */
export class AgentRegistrationConflictsQuery extends Query<{ name: boolean; key: boolean }> {
  constructor(
    readonly name: string,
    readonly fingerprint: string,
  ) {
    super();
  }
}
