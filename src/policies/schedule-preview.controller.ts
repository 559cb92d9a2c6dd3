import { BadRequestException, Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiPropertyOptional, ApiTags, PickType } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, Max, Min } from 'class-validator';
import { Access } from '../http/access.guard';
import { CalendarError, isValidTimeZone, parseCron, slotsBetween } from './calendar';
import { Clock } from './clock';
import { PolicyScheduleDto } from './policies.dto';
import { Owned } from '../http/owned';

/** A policy schedule's cron and time zone, validated as a policy's are. */
export class SchedulePreviewQuery extends PickType(PolicyScheduleDto, ['cron', 'timezone'] as const) {
  @ApiPropertyOptional({ default: 5, maximum: 50 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(50)
  count?: number;
}

/** The next slots a cron names in a time zone, as the scheduler would take them: what a form shows while the cron is typed. */
@ApiTags('policies')
@ApiBearerAuth()
@Controller('api/v1/schedule-preview')
export class SchedulePreviewController {
  constructor(private readonly clock: Clock) {}

  @Access('read')
  @Owned('none')
  @Get()
  preview(@Query() { cron, timezone, count }: SchedulePreviewQuery) {
    if (!isValidTimeZone(timezone)) throw new BadRequestException(`unknown time zone ${JSON.stringify(timezone)}`);
    let spec;
    try {
      spec = parseCron(cron);
    } catch (error) {
      if (error instanceof CalendarError) throw new BadRequestException(error.message);
      throw error;
    }
    const now = this.clock.now();
    const slots = slotsBetween(spec, timezone, now, new Date(now.getTime() + 8 * 366 * 86_400_000), count ?? 5);
    return { cron, timezone, after: now.toISOString(), slots: slots.map((s) => s.toISOString()) };
  }
}
