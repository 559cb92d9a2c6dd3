import { Appended } from '../../eventing/command';

export interface PolicyResult extends Appended {
  policyId: string;
}
