import { ApiProperty, ApiPropertyOptional, PickType } from '@nestjs/swagger';
import { Transform, Type } from 'class-transformer';
import { ArrayMaxSize, IsArray, IsBoolean, IsDefined, IsIn, IsInt, IsNumber, IsObject, IsOptional, IsString, IsUUID, Length, Matches, Max, Min, ValidateNested } from 'class-validator';
import { CatchUp, PolicyDefinition } from './policy.events';

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export class PolicyVmsDto {
  @ApiPropertyOptional({ type: [String], example: ['vm1'] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(10_000)
  @Matches(ID, { each: true, message: 'vms.ids must be VM ids (1-128 characters of A-Z a-z 0-9 . _ -)' })
  ids?: string[];

  @ApiPropertyOptional({ example: 'web-*', description: 'a glob on the VM name: * any run of characters, ? one' })
  @IsOptional()
  @IsString()
  @Length(1, 200)
  namePattern?: string;

  @ApiPropertyOptional()
  @IsOptional()
  @IsUUID('4', { message: 'vms.agentId must be a uuid' })
  agentId?: string;
}

/** A selector as a form holds it before it is saved, in a query string: `namePattern` and `agentId` checked as a policy's are. */
export class MatchingVmsQueryDto extends PickType(PolicyVmsDto, ['namePattern', 'agentId'] as const) {
  @ApiPropertyOptional({ type: String, example: 'vm1,vm2', description: 'VM ids, comma-separated (at most 1,000)' })
  @IsOptional()
  @Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? value.split(',') : value))
  @IsArray({ message: 'ids must be VM ids, comma-separated' })
  @ArrayMaxSize(1000)
  @Matches(ID, { each: true, message: 'ids must be VM ids (1-128 characters of A-Z a-z 0-9 . _ -), comma-separated' })
  ids?: string[];
}

export class MatchingVmDto {
  @ApiProperty() vmId: string;
  @ApiProperty() name: string;
  @ApiProperty({ format: 'uuid' }) agentId: string;
}

export class PolicyScheduleDto {
  @ApiProperty({ example: '30 2 * * *', description: 'm h dom mon dow, or with a leading seconds field' })
  @IsString()
  @Length(1, 200)
  cron: string;

  @ApiProperty({ example: 'Europe/Berlin' })
  @IsString()
  @Length(1, 100)
  timezone: string;

  @ApiPropertyOptional({ enum: ['once', 'skip'], default: 'once', description: 'slots missed while every hub was down: run the newest once, or record them missed' })
  @IsOptional()
  @IsIn(['once', 'skip'])
  catchUp?: CatchUp;
}

export class RetentionDto {
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(0) @Max(100_000) keepLast?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(0) @Max(100_000) keepHourly?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(0) @Max(100_000) keepDaily?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(0) @Max(100_000) keepWeekly?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(0) @Max(100_000) keepMonthly?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(0) @Max(100_000) keepYearly?: number;
}

export class PolicyDrillDto {
  @ApiProperty({ example: '0 4 * * 0', description: 'm h dom mon dow (or with a leading seconds field), in the schedule\'s time zone' })
  @IsString()
  @Length(1, 200)
  cron: string;

  @ApiPropertyOptional({ description: "the agent whose host boots the drills (default: each VM's own agent)" })
  @IsOptional()
  @IsUUID('4', { message: 'drill.agentId must be a uuid' })
  agentId?: string;

  @ApiPropertyOptional({ default: 300, description: 'a drill whose guest has not answered by then fails' })
  @IsOptional()
  @IsInt()
  @Min(10)
  @Max(3600)
  timeoutSeconds?: number;
}

/** What POST and PUT take: the whole definition. Cron, time zone and retention are checked by the policy decider. */
export class PolicyDto {
  @ApiProperty({ example: 'nightly' })
  @IsString()
  @Length(1, 128)
  name: string;

  @ApiProperty({ type: PolicyVmsDto })
  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => PolicyVmsDto)
  vms: PolicyVmsDto;

  @ApiProperty()
  @IsUUID('4', { message: 'repositoryId must be a uuid' })
  repositoryId: string;

  @ApiProperty({ type: PolicyScheduleDto })
  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => PolicyScheduleDto)
  schedule: PolicyScheduleDto;

  @ApiPropertyOptional({ description: 'every Nth backup of a VM is a full' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(10_000)
  fullEvery?: number;

  @ApiProperty({ type: RetentionDto })
  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => RetentionDto)
  retention: RetentionDto;

  @ApiProperty({ example: 26 })
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0.01)
  @Max(100_000)
  rpoHours: number;

  @ApiPropertyOptional({ default: true })
  @IsOptional()
  @IsBoolean()
  enabled?: boolean;

  @ApiPropertyOptional({ type: PolicyDrillDto, nullable: true, description: 'recovery drills of the newest point of each VM; null or absent: none' })
  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => PolicyDrillDto)
  drill?: PolicyDrillDto | null;

  @ApiPropertyOptional({ description: 'required when the retention rules would prune more than half of a VM\'s restore points at once (409 without it); not recorded' })
  @IsOptional()
  @IsBoolean()
  confirmPrune?: boolean;
}

export class PolicyIdParams {
  @ApiProperty({ format: 'uuid' })
  @IsUUID('4', { message: 'policyId must be a uuid' })
  policyId: string;
}

/** The definition as recorded: defaults filled in, absent optional fields left out. */
export function toDefinition(dto: PolicyDto): PolicyDefinition {
  const defined = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
  return {
    name: dto.name,
    vms: defined({ ids: dto.vms.ids, namePattern: dto.vms.namePattern, agentId: dto.vms.agentId }),
    repositoryId: dto.repositoryId,
    schedule: { cron: dto.schedule.cron, timezone: dto.schedule.timezone, catchUp: dto.schedule.catchUp ?? 'once' },
    fullEvery: dto.fullEvery ?? null,
    retention: defined({ ...dto.retention }),
    rpoHours: dto.rpoHours,
    enabled: dto.enabled ?? true,
    ...(dto.drill ? { drill: defined({ cron: dto.drill.cron, agentId: dto.drill.agentId, timeoutSeconds: dto.drill.timeoutSeconds ?? 300 }) } : {}),
  };
}
