import { BadRequestException } from '@nestjs/common';
import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional } from 'class-validator';
import { isEventPosition, IsEventPosition } from '../http/instants';

const POSITION_MESSAGE = 'after must be an event position as the stream gave it (its event ids)';

export class LiveQuery {
  @ApiPropertyOptional({ description: 'resume after this event position (an id the stream sent); `Last-Event-ID` does the same', example: '00000000000000001234:00000000000000000000' })
  @IsOptional()
  @IsEventPosition(POSITION_MESSAGE)
  after?: string;
}

/** The header an SSE client sends on reconnect, as hostile as any query string. */
export function lastEventId(header: string | string[] | undefined): string | null {
  if (header === undefined) return null;
  if (!isEventPosition(header)) throw new BadRequestException(`Last-Event-ID: ${POSITION_MESSAGE}`);
  return header;
}
