import { ApiProperty } from '@nestjs/swagger';
import { IsUUID, Matches, ValidateIf } from 'class-validator';
import { TENANT_ID, TENANT_ID_MESSAGE } from './tenancy.events';

export class AssignTenantDto {
  @ApiProperty({ nullable: true, type: String, example: 'acme', description: 'the tenant; null: no tenant (only tokens without a tenant see it)' })
  @ValidateIf((_o, v) => v !== null)
  @Matches(TENANT_ID, { message: TENANT_ID_MESSAGE })
  tenantId: string | null;
}

export class AgentIdParams {
  @ApiProperty({ format: 'uuid' })
  @IsUUID('4', { message: 'agentId must be a uuid' })
  agentId: string;
}

export class RepositoryIdParams {
  @ApiProperty({ format: 'uuid' })
  @IsUUID('4', { message: 'repository id must be a uuid' })
  id: string;
}
