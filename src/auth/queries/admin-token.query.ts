import { Query } from '@nestjs/cqrs';

export interface CurrentAdminToken {
  generation: number;
  tokenHash: string;
}

/** The admin token's hash as last rotated through the API, or null when it never was (the configured one counts). */
export class AdminTokenQuery extends Query<CurrentAdminToken | null> {}
