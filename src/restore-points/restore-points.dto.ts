import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsUUID, Matches } from 'class-validator';
import { RestorePointRecord } from './queries/restore-point.record';
import { IDENTIFIER_PATTERN as ID } from '../wire/identifiers';

export class RestorePointIdParams {
  @ApiProperty({ example: 'rp-20261124220319-ddb14ccd' })
  @Matches(ID, { message: 'restorePointId must be 1-128 characters of A-Z a-z 0-9 . _ -' })
  id: string;
}

export class VmIdParams {
  @ApiProperty({ example: 'vm1' })
  @Matches(ID, { message: 'vmId must be 1-128 characters of A-Z a-z 0-9 . _ -' })
  vmId: string;
}

export class ChainQuery {
  @ApiPropertyOptional({ format: 'uuid', description: 'only the chain in this repository' })
  @IsOptional()
  @IsUUID('4', { message: 'repositoryId must be a uuid' })
  repositoryId?: string;
}

/** The API's view of a restore point. */
export function restorePointResponse(v: RestorePointRecord) {
  return {
    restorePointId: v.restorePointId,
    vmId: v.vmId,
    repositoryId: v.repositoryId,
    backupId: v.backupId,
    type: v.type,
    parentId: v.parentId,
    createdAt: v.createdAt,
    status: v.status,
    // in the recycle bin: when it was deleted, by which token, and when its files go
    recycled: v.recycledAt ? { at: v.recycledAt, purgeAfter: v.purgeAfter, by: v.recycledBy } : null,
    disks: v.disks.map((d) => ({ diskId: d.diskId, file: d.file, parentFile: d.parentFile, virtualSize: d.virtualSize, fileBytes: d.fileBytes, changeRef: d.changeRef, digests: d.digests ? { file: d.digests.file, blocks: d.digests.blocks } : null })),
    verification: v.verifiedAt ? { ok: v.verifyOk, problems: v.verifyProblems ?? [], warnings: v.verifyWarnings ?? [], at: v.verifiedAt, digests: v.verifyDigests ?? 'none' } : null,
    integrity: v.integrity,
    verifiedAt: v.verifiedAt,
    damaged: v.damaged,
    consistency: v.consistency,
    consistencyReason: v.consistencyReason,
    freezeMs: v.freezeMs,
    // what a restore can define the VM from: the domain's XML, and its UEFI variables and TPM state when it had them
    configuration: v.configuration ? { domainXml: true, nvram: v.configuration.nvram, tpm: v.configuration.tpm } : null,
    // disks of the VM holding data this point lacks: its agent could not read them
    disksLeftOut: v.disksLeftOut,
    // a point copied from another hub: which remote, sync job and run, and what crossed the wire; null for a backup made here
    source: v.source ?? null,
  };
}
