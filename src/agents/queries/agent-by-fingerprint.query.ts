import { Query } from '@nestjs/cqrs';

/** Which agent registered the SSH key with this fingerprint, or null. */
export class AgentByFingerprintQuery extends Query<{ agentId: string } | null> {
  constructor(readonly fingerprint: string) {
    super();
  }
}
