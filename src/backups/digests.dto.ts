import { IsUUID, Matches } from 'class-validator';

export class DiskDigestsParams {
  @IsUUID('4', { message: 'jobId must be a uuid' })
  jobId: string;

  @Matches(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, { message: 'diskId must be 1-128 characters of A-Z a-z 0-9 . _ -' })
  diskId: string;
}

export class JobParams {
  @IsUUID('4', { message: 'jobId must be a uuid' })
  jobId: string;
}
