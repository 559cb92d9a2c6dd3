import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsObject, IsOptional, IsString, IsUUID, Matches, Max, MaxLength, Min, ValidateIf, ValidateNested } from 'class-validator';
import { DomainError } from '../../eventing/domain-error';
import { RegisterRepository } from '../repository-lifecycle.workflow';
import { CIFS_SHARE, MOUNT_OPTIONS, NFS_EXPORT, NFS_SERVER } from './mount-commands';
import { DEFAULT_MAX_CHAIN_DEPTH, MAX_MAX_CHAIN_DEPTH, MIN_MAX_CHAIN_DEPTH, REPOSITORY_LAYOUTS, RepositoryLayout } from './repository.events';

const KIND_FIELDS = { local: ['path'], nfs: ['server', 'export', 'options'], cifs: ['share', 'username', 'passwordFile', 'options'] } as const;

export class RepositoryEncryptionDto {
  @ApiProperty({ description: 'absolute path on the hub of the file holding the key (32 to 4096 bytes of UTF-8 text, e.g. openssl rand -hex 32); the key itself never leaves it', example: '/etc/sendense/keys/main.key' })
  @IsString()
  @Matches(/^\/[^\0]{1,1023}$/, { message: 'encryption.keyFile must be an absolute path' })
  keyFile: string;
}

export class RegisterRepositoryDto {
  @ApiProperty({ example: 'main' })
  @IsString()
  @Matches(/^[a-z0-9][a-z0-9._-]{0,62}$/, { message: 'name must be 1-63 characters of a-z 0-9 . _ - starting with a letter or digit' })
  name: string;

  @ApiProperty({ enum: ['local', 'nfs', 'cifs'] })
  @IsIn(['local', 'nfs', 'cifs'])
  kind: 'local' | 'nfs' | 'cifs';

  @ApiPropertyOptional({ description: 'local: absolute directory (created if missing)', example: '/var/lib/sendense/repositories/main' })
  @ValidateIf((o) => o.kind === 'local' || o.path !== undefined)
  @IsString()
  @MaxLength(1024)
  @Matches(/^\/[^\0]*$/, { message: 'path must be an absolute path' })
  path?: string;

  @ApiPropertyOptional({ description: 'nfs: server host name or IP', example: 'nas.lan' })
  @ValidateIf((o) => o.kind === 'nfs' || o.server !== undefined)
  @IsString()
  @Matches(NFS_SERVER, { message: 'server must be a host name or IP address' })
  server?: string;

  @ApiPropertyOptional({ description: 'nfs: exported path', example: '/export/backups' })
  @ValidateIf((o) => o.kind === 'nfs' || o.export !== undefined)
  @IsString()
  @Matches(NFS_EXPORT, { message: 'export must be an absolute path on the server' })
  export?: string;

  @ApiPropertyOptional({ description: 'cifs: //server/share', example: '//nas/backups' })
  @ValidateIf((o) => o.kind === 'cifs' || o.share !== undefined)
  @IsString()
  @Matches(CIFS_SHARE, { message: 'share must look like //server/share' })
  share?: string;

  @ApiPropertyOptional({ description: 'cifs: user name' })
  @ValidateIf((o) => o.kind === 'cifs' || o.username !== undefined)
  @IsString()
  @Matches(/^[A-Za-z0-9._@\\-]{1,128}$/, { message: 'username must be 1-128 characters of A-Z a-z 0-9 . _ @ \\ -' })
  username?: string;

  @ApiPropertyOptional({ description: 'cifs: file on the hub holding the password' })
  @ValidateIf((o) => o.kind === 'cifs' || o.passwordFile !== undefined)
  @IsString()
  @Matches(/^\/[^\0]{1,1023}$/, { message: 'passwordFile must be an absolute path' })
  passwordFile?: string;

  @ApiPropertyOptional({ description: 'nfs/cifs: mount options', example: 'vers=4.2,hard' })
  @IsOptional()
  @IsString()
  @Matches(MOUNT_OPTIONS, { message: 'options must be a comma-separated list of key=value mount options' })
  options?: string;

  @ApiPropertyOptional({ description: 'days each restore point can be neither deleted, pruned, merged nor rebased after it was written (its files immutable: chattr +i); the repository must be on a filesystem that supports it (ext4, xfs)', example: 7 })
  @IsOptional()
  @IsInt({ message: 'immutableDays must be a whole number of days' })
  @Min(1, { message: 'immutableDays must be at least 1' })
  @Max(36500, { message: 'immutableDays must be at most 36500' })
  immutableDays?: number;

  @ApiPropertyOptional({
    description: `the most restore points one chain of a VM may hold (the full and its incrementals); the backup after that is a synthetic full: the hub copies the newest point's view into a new standalone file and the changes since it land there, so the next chain starts without reading the whole VM again (default ${DEFAULT_MAX_CHAIN_DEPTH})`,
    example: DEFAULT_MAX_CHAIN_DEPTH,
  })
  @IsOptional()
  @IsInt({ message: 'maxChainDepth must be a whole number of restore points' })
  @Min(MIN_MAX_CHAIN_DEPTH, { message: `maxChainDepth must be at least ${MIN_MAX_CHAIN_DEPTH}` })
  @Max(MAX_MAX_CHAIN_DEPTH, { message: `maxChainDepth must be at most ${MAX_MAX_CHAIN_DEPTH}` })
  maxChainDepth?: number;

  @ApiPropertyOptional({ description: "write the repository's qcow2 files encrypted (qcow2 LUKS) with this key; its SHA-256 fingerprint is recorded, never the key", type: RepositoryEncryptionDto })
  @IsOptional()
  @IsObject({ message: 'encryption must be an object {keyFile}' })
  @ValidateNested()
  @Type(() => RepositoryEncryptionDto)
  encryption?: RepositoryEncryptionDto;

  @ApiPropertyOptional({
    enum: REPOSITORY_LAYOUTS,
    description:
      "how points are stored: 'qcow2' (default), a qcow2 chain per VM and disk; 'chunks', every VM's disks as 64 KiB chunks stored once per repository, compressed (zstd) and, with encryption, sealed (AES-256-GCM) — see docs/design/storage.md for what reads chunk points today",
  })
  @IsOptional()
  @IsIn(REPOSITORY_LAYOUTS, { message: `layout must be one of ${REPOSITORY_LAYOUTS.join(', ')}` })
  layout?: RepositoryLayout;
}

/** What may change once a repository holds restore points: only what steers the backups to come. */
export class ChangeRepositorySettingsDto {
  @ApiProperty({
    description: `the most restore points one chain of a VM may hold from now on (${MIN_MAX_CHAIN_DEPTH}-${MAX_MAX_CHAIN_DEPTH}); the next backup of a chain that already holds as many or more is a synthetic full; existing points are left as they are`,
    example: 14,
  })
  @IsInt({ message: 'maxChainDepth must be a whole number of restore points' })
  @Min(MIN_MAX_CHAIN_DEPTH, { message: `maxChainDepth must be at least ${MIN_MAX_CHAIN_DEPTH}` })
  @Max(MAX_MAX_CHAIN_DEPTH, { message: `maxChainDepth must be at most ${MAX_MAX_CHAIN_DEPTH}` })
  maxChainDepth: number;
}

export class RepositoryIdParams {
  @IsUUID('4', { message: 'repositoryId must be a uuid' })
  id: string;
}

export class RepositoryUsageQueryDto {
  @ApiPropertyOptional({ description: 'how many days of samples, counted back from now (1-365); the estimate reads the last 30 whatever this is', default: 30, minimum: 1, maximum: 365 })
  @IsOptional()
  @Type(() => Number)
  @IsInt({ message: 'days must be a whole number of days' })
  @Min(1, { message: 'days must be at least 1' })
  @Max(365, { message: 'days must be at most 365' })
  days?: number;
}

/** A field of another kind is refused rather than ignored, so a mistyped request never registers something else. */
export function registrationOf(body: RegisterRepositoryDto): RegisterRepository {
  const foreign = Object.keys(body).filter((k) => (body as unknown as Record<string, unknown>)[k] !== undefined).filter((k) => !['name', 'kind', 'immutableDays', 'maxChainDepth', 'encryption', 'layout'].includes(k) && !(KIND_FIELDS[body.kind] as readonly string[]).includes(k));
  if (foreign.length) throw new DomainError('invalid', `${foreign.join(', ')} do(es) not apply to a ${body.kind} repository`);
  // every chunk point's index is whole: no chain to bound
  if (body.layout === 'chunks' && body.maxChainDepth !== undefined) throw new DomainError('invalid', 'maxChainDepth does not apply to a chunks repository: each of its points is whole');
  return {
    name: body.name,
    kind: body.kind,
    immutableDays: body.immutableDays ?? null,
    maxChainDepth: body.maxChainDepth ?? DEFAULT_MAX_CHAIN_DEPTH,
    encryption: body.encryption ? { keyFile: body.encryption.keyFile } : null,
    layout: body.layout ?? 'qcow2',
    path: body.path,
    nfs: body.kind === 'nfs' ? { server: body.server!, export: body.export!, options: body.options ?? '' } : undefined,
    cifs: body.kind === 'cifs' ? { share: body.share!, username: body.username!, passwordFile: body.passwordFile!, options: body.options ?? '' } : undefined,
  };
}
