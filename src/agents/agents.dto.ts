import { ApiProperty } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { ArrayMaxSize, ArrayUnique, IsArray, IsIn, IsInt, IsOptional, IsString, Matches, MaxLength, Min, MinLength, ValidateNested } from 'class-validator';
import { DISK_FORMATS, DiskFormat } from '../wire/backup-protocol';
import { IsSafeIdentifier, PRINTABLE_NAME, ToPrintable, UUID_PATTERN } from '../wire/identifiers';

export class RegisterAgentDto {
  @ApiProperty({ example: 'esx-01' })
  @IsString()
  @Matches(/^[a-z0-9][a-z0-9._-]{0,62}$/, { message: 'name must be 1-63 characters of a-z 0-9 . _ - starting with a letter or digit' })
  name: string;

  @ApiProperty({ example: 'ssh-ed25519 AAAAC3... sendense-agent' })
  @IsString()
  @MaxLength(8192)
  publicKey: string;
}

export class InventoryDiskDto {
  @IsSafeIdentifier()
  diskId: string;

  @IsString()
  @MaxLength(4096)
  path: string;

  @IsIn(DISK_FORMATS)
  format: DiskFormat;

  @IsInt()
  @Min(0)
  virtualSize: number;

  /** dirty-bitmap: qcow2 bitmaps or libvirt checkpoints; cbt: VMware's changed block tracking; none: fulls only. */
  @IsIn(['dirty-bitmap', 'cbt', 'none'])
  changeTracking: 'dirty-bitmap' | 'cbt' | 'none';

  @IsOptional()
  @IsString()
  @MaxLength(256)
  label?: string;

  @IsOptional()
  @IsString()
  @MaxLength(256)
  datastore?: string;
}

/** A disk that holds data the agent cannot read: shown with the VM, so that what is not protected is seen. */
export class DiskLeftOutDto {
  @IsString()
  @Matches(PRINTABLE_NAME, { message: 'diskId must be 1-128 printable characters' })
  diskId: string;

  // shown to operators as the agent wrote it, less what would drive their terminal (an ESC, a bidi override)
  @IsString()
  @MinLength(1)
  @MaxLength(1000)
  @ToPrintable()
  reason: string;
}

export class InventoryVmDto {
  @IsSafeIdentifier()
  vmId: string;

  // a VM's name is its owner's to choose: shown without what would drive an operator's terminal
  @IsString()
  @MaxLength(256)
  @ToPrintable()
  name: string;

  @IsOptional()
  @IsIn(['on', 'off', 'suspended'])
  powerState?: 'on' | 'off' | 'suspended';

  @IsArray()
  @ArrayMaxSize(64)
  // one row a disk in the VMs read model: a disk listed twice would be two targets writing one file
  @ArrayUnique((disk: InventoryDiskDto) => disk?.diskId, { message: 'disks must not list a diskId twice' })
  @ValidateNested({ each: true })
  @Type(() => InventoryDiskDto)
  disks: InventoryDiskDto[];

  @IsOptional()
  @IsArray()
  @ArrayMaxSize(64)
  @ValidateNested({ each: true })
  @Type(() => DiskLeftOutDto)
  disksLeftOut?: DiskLeftOutDto[];
}

export class InventoryDto {
  @IsArray()
  @ArrayMaxSize(10000)
  // one row a VM in the VMs read model: a vmId twice in one report stopped its projection at that event for good
  @ArrayUnique((vm: InventoryVmDto) => vm?.vmId, { message: 'vms must not list a vmId twice' })
  @ValidateNested({ each: true })
  @Type(() => InventoryVmDto)
  vms: InventoryVmDto[];
}

export class AgentIdParams {
  @Matches(UUID_PATTERN, { message: 'agentId must be a uuid' })
  agentId: string;
}

export class VmIdParams {
  @IsSafeIdentifier()
  vmId: string;
}

export class MoveVmDto {
  @ApiProperty({ description: 'the agent that owns the VM from now on' })
  @Matches(UUID_PATTERN, { message: 'agentId must be a uuid' })
  agentId: string;

  @ApiProperty({ example: 'host migrated from esx-01 to esx-02' })
  @IsString()
  @MinLength(1)
  @MaxLength(512)
  reason: string;
}
