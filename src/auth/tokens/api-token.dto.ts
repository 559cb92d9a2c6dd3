import { ApiProperty } from '@nestjs/swagger';
import { IsString, Matches } from 'class-validator';

export class IssueApiTokenDto {
  @ApiProperty({ example: 'prometheus', description: 'becomes the actor of every event this token causes' })
  @IsString()
  @Matches(/^[a-z0-9][a-z0-9._-]{0,62}$/, { message: 'name must be 1-63 characters of a-z 0-9 . _ - starting with a letter or digit' })
  name: string;
}
