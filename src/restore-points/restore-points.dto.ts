import { IsOptional, IsUUID, Matches } from 'class-validator';

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export class RestorePointIdParams {
  @Matches(ID, { message: 'restorePointId must be 1-128 characters of A-Z a-z 0-9 . _ -' })
  id: string;
}

export class VmIdParams {
  @Matches(ID, { message: 'vmId must be 1-128 characters of A-Z a-z 0-9 . _ -' })
  vmId: string;
}

export class ChainQuery {
  @IsOptional()
  @IsUUID('4', { message: 'repositoryId must be a uuid' })
  repositoryId?: string;
}
