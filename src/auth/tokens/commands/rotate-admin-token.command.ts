import { Appended, Command } from '../../../eventing/command';

export interface RotatedAdminToken extends Appended {
  generation: number;
  /** Returned this once; the event holds only its hash. */
  token: string;
}

/** A new admin token replaces the current one on every hub sharing the event store; the old one stops working at once. */
export class RotateAdminTokenCommand extends Command<RotatedAdminToken> {}
