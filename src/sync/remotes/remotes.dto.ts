import { ApiProperty } from '@nestjs/swagger';
import { IsString, Matches, MaxLength } from 'class-validator';

export const SSH_URL = /^ssh:\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})(?::(\d{1,5}))?\/?$/;

/** A token the remote issued this hub: at its registration, or in place of the one it had. */
export class RemoteTokenDto {
  @ApiProperty({ description: 'a token the remote hub issued with role sync (POST /api/v1/tokens there); kept in the database (hub_secrets), never in an event' })
  @IsString()
  @Matches(/^[\x21-\x7e]{16,512}$/, { message: 'token must be 16-512 printable characters without spaces' })
  token: string;
}

export class RegisterRemoteDto extends RemoteTokenDto {
  @ApiProperty({ example: 'primary' })
  @IsString()
  @Matches(/^[a-z0-9][a-z0-9._-]{0,62}$/, { message: 'name must be 1-63 characters of a-z 0-9 . _ - starting with a letter or digit' })
  name: string;

  @ApiProperty({ example: 'ssh://primary.example:2222', description: "the remote hub's SSH endpoint (SENDENSE_SSH_PORT), as its agents dial it" })
  @IsString()
  @Matches(SSH_URL, { message: 'url must be ssh://HOST[:PORT], the SSH endpoint of the remote hub' })
  url: string;

  @ApiProperty({ example: 'SHA256:0rQ4...', description: "the remote's SSH host key fingerprint as its GET /api/v1/identity states it (ssh.hostKeyFingerprint)" })
  @IsString()
  @MaxLength(60)
  @Matches(/^SHA256:[A-Za-z0-9+/]{43}$/, { message: 'fingerprint must be SHA256: followed by 43 base64 characters, as GET /api/v1/identity states it' })
  fingerprint: string;
}

export class RemoteIdParams {
  @ApiProperty()
  @Matches(/^[0-9a-f-]{36}$/, { message: 'remote id must be a uuid' })
  remoteId: string;
}
