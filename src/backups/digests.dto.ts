import { IsUUID, Matches } from 'class-validator';
import { IDENTIFIER_PATTERN } from '../wire/identifiers';

export class DiskDigestsParams {
  @IsUUID('4', { message: 'jobId must be a uuid' })
  jobId: string;

  @Matches(IDENTIFIER_PATTERN, { message: 'diskId must be 1-128 characters of A-Z a-z 0-9 . _ -' })
  diskId: string;
}

export class JobParams {
  @IsUUID('4', { message: 'jobId must be a uuid' })
  jobId: string;
}
