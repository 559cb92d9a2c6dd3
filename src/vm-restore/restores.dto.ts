import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsBoolean, IsDefined, IsIn, IsInt, IsObject, IsOptional, IsUUID, Matches, Max, Min, ValidateIf, ValidateNested } from 'class-validator';
import type { MinimalDefinition } from '../wire/restore-protocol';
import type { RestoreRecord } from './queries/restore.record';
import { DOMAIN_LOOKUP_FORM, DOMAIN_LOOKUP_FORM_MESSAGE, IDENTIFIER_PATTERN as ID } from '../wire/identifiers';
import { IsStorageDir } from './storage-dir.validator';

/** A domain name also names files on the agent's host. */
const DOMAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export class RestoreTargetDto {
  @ApiProperty({ enum: ['new-domain', 'replace'] })
  @IsIn(['new-domain', 'replace'], { message: 'kind must be new-domain or replace' })
  kind: 'new-domain' | 'replace';

  @ApiPropertyOptional({ description: 'new-domain: the new domain name' })
  @ValidateIf((t: RestoreTargetDto) => t.kind === 'new-domain' || t.name !== undefined)
  @Matches(DOMAIN_NAME, { message: 'name must be 1-64 characters of A-Z a-z 0-9 . _ - (new-domain needs one)' })
  @Matches(new RegExp(`^(?!${DOMAIN_LOOKUP_FORM.source})`, 'i'), { message: DOMAIN_LOOKUP_FORM_MESSAGE })
  name?: string;

  @ApiPropertyOptional({ description: "new-domain: where the disks are written (default: libvirt's default pool)" })
  @IsOptional()
  @IsStorageDir()
  storageDir?: string;

  @ApiPropertyOptional({ description: 'new-domain: boot it once defined' })
  @IsOptional()
  @IsBoolean({ message: 'start must be a boolean' })
  start?: boolean;

  @ApiPropertyOptional({ description: 'replace: the shut-off domain whose disks get the point' })
  @ValidateIf((t: RestoreTargetDto) => t.kind === 'replace' || t.vmId !== undefined)
  @Matches(ID, { message: 'vmId must be 1-128 characters of A-Z a-z 0-9 . _ - (replace needs one)' })
  vmId?: string;
}

export class MinimalDefinitionDto {
  @ApiProperty()
  @IsInt()
  @Min(16)
  @Max(4 * 1024 * 1024)
  memoryMiB: number;

  @ApiProperty()
  @IsInt()
  @Min(1)
  @Max(1024)
  vcpus: number;
}

/** The domain a point without a recorded configuration is restored or drilled as (`StartRestoreDto`, `StartDrillDto`). */
function OptionalMinimalDefinition(): PropertyDecorator {
  return applyDecorators(ApiPropertyOptional({ type: MinimalDefinitionDto, description: 'for a point without a recorded configuration' }), IsOptional(), IsObject(), ValidateNested(), Type(() => MinimalDefinitionDto));
}

/** The definition as the workflow takes it: only its own fields, null when none was given. */
export function minimalDefinition(dto: MinimalDefinitionDto | undefined): MinimalDefinition | null {
  return dto ? { memoryMiB: dto.memoryMiB, vcpus: dto.vcpus } : null;
}

export class StartRestoreDto {
  @ApiProperty()
  @Matches(ID, { message: 'restorePointId must be 1-128 characters of A-Z a-z 0-9 . _ -' })
  restorePointId: string;

  @ApiProperty()
  @IsUUID('4', { message: 'agentId must be a uuid' })
  agentId: string;

  @ApiProperty({ enum: ['full', 'instant'] })
  @IsIn(['full', 'instant'], { message: 'mode must be full or instant' })
  mode: 'full' | 'instant';

  @ApiProperty({ type: RestoreTargetDto })
  @IsDefined()
  @IsObject()
  @ValidateNested()
  @Type(() => RestoreTargetDto)
  target: RestoreTargetDto;

  @OptionalMinimalDefinition()
  definition?: MinimalDefinitionDto;

  @ApiPropertyOptional({ description: 'restore a point a verify found corrupt; the restore then fails naming the damaged blocks it meets' })
  @IsOptional()
  @IsBoolean()
  force?: boolean;
}

export class StartDrillDto {
  @ApiProperty()
  @IsUUID('4', { message: 'agentId must be a uuid' })
  agentId: string;

  @ApiPropertyOptional({ description: 'how long the point gets to boot (default 300 s)' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(3600)
  timeoutSeconds?: number;

  @OptionalMinimalDefinition()
  definition?: MinimalDefinitionDto;
}

export class RestorePointIdParams {
  @ApiProperty()
  @Matches(ID, { message: 'restorePointId must be 1-128 characters of A-Z a-z 0-9 . _ -' })
  id: string;
}

export class RestoreIdParams {
  @ApiProperty({ format: 'uuid' })
  @IsUUID('4', { message: 'restoreId must be a uuid' })
  restoreId: string;
}

export class RestoreDiskParams extends RestoreIdParams {
  @Matches(ID, { message: 'diskId must be 1-128 characters of A-Z a-z 0-9 . _ -' })
  diskId: string;
}

export class ListRestoresDto {
  @IsOptional()
  @Matches(ID, { message: 'vmId must be 1-128 characters of A-Z a-z 0-9 . _ -' })
  vmId?: string;
}

/** The API's view of a restore: status, phase, per-disk progress and the resulting domain. */
export function restoreResponse(r: RestoreRecord) {
  return {
    restoreId: r.restoreId,
    restorePointId: r.restorePointId,
    vmId: r.vmId,
    repositoryId: r.repositoryId,
    agentId: r.agentId,
    mode: r.mode,
    target: r.target,
    status: r.status,
    phase: r.phase,
    disks: r.disks.map((d) => ({ diskId: d.diskId, path: d.path, bytesDone: d.bytesDone, bytesPlanned: d.bytesPlanned, rate: d.rate, done: d.done, verifiedBlocks: d.verifiedBlocks })),
    domain: r.domain,
    stalled: r.stalled,
    error: r.error,
    damaged: r.damaged,
    knownDamage: r.knownDamage,
    drill: r.drill ? { passed: r.drill.passed, bootMs: r.drill.bootMs, reason: r.drill.reason, consistency: r.drill.consistency, screenshot: r.drill.screenshot ? { contentType: r.drill.screenshot.contentType, bytes: r.drill.screenshot.bytes, sha256: r.drill.screenshot.sha256 } : null } : null,
    correlationId: r.correlationId,
    requestedAt: r.requestedAt,
    finishedAt: r.finishedAt,
    durationMs: r.durationMs,
  };
}
