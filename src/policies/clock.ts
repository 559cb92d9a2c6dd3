import { Injectable } from '@nestjs/common';

/** The scheduler's time source: the system clock, replaced in tests that move time. */
@Injectable()
export class Clock {
  now(): Date {
    return new Date();
  }
}
