import { Body, Controller, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiProperty, ApiTags } from '@nestjs/swagger';
import { IsString, Matches } from 'class-validator';
import { currentContext } from '../eventing/request-context';
import { Access } from '../http/access.guard';
import { DOWNLOAD_TARGET, DownloadLinks } from './download-links';
import { Owned } from '../http/owned';

export class IssueDownloadLinkDto {
  @ApiProperty({ example: '/api/v1/restore/mounts/6c7e1a1e-0f4e-4d2a-9a3c-1b2c3d4e5f60/file?path=etc/hostname' })
  @IsString()
  @Matches(DOWNLOAD_TARGET, { message: 'path must be a download of this API: /api/v1/restore/mounts/{id}/file|archive?... or /api/v1/restore-points/{id}/disks/{diskId}/image?...' })
  path: string;
}

@ApiTags('tokens')
@ApiBearerAuth()
@Controller('api/v1/download-links')
export class DownloadLinksController {
  constructor(private readonly links: DownloadLinks) {}

  /** Any token that may read may ask; the download's own rule is applied when the link is used. */
  @Access('read')
  @Owned('none')
  @Post()
  issue(@Body() { path }: IssueDownloadLinkDto) {
    // the bearer middleware sets it on every request that reaches a route needing a token
    return this.links.issue(currentContext().credential!, path);
  }
}
