import type { Role } from '../../../eventing/roles';
import { Appended, Command } from '../../../eventing/command';

export interface IssuedToken extends Appended {
  tokenId: string;
  name: string;
  role: Role;
  tenantId: string | null;
  /** Returned this once; events and read models hold only its hash. */
  token: string;
}

/** A named bearer token with a role, confined to a tenant or not; its name becomes the actor of every event it causes. */
export class IssueApiTokenCommand extends Command<IssuedToken> {
  constructor(
    readonly name: string,
    readonly role: Role,
    readonly tenantId: string | null = null,
  ) {
    super();
  }
}
