import { registerDecorator, ValidationOptions } from 'class-validator';

/*
 * What a query's times and event positions may be: what the hub's own code and PostgreSQL both read. class-validator's
 * ISO 8601 check also takes `2026`, `2026-11` and week dates (`2026-W01`), which new Date() cannot read and
 * PostgreSQL's timestamptz refuses, and a position's 20 digits go past bigint: each was a 500.
 */

/** A calendar date, or a date and time with an optional fraction and offset: `2026-11-01`, `2026-11-01T12:00:00Z`. */
const INSTANT = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

export function isInstant(value: unknown): value is string {
  if (typeof value !== 'string' || !INSTANT.test(value) || Number.isNaN(Date.parse(value))) return false;
  // new Date() rolls 2026-02-30 over into March; PostgreSQL refuses it
  const [year, month, day] = value.slice(0, 10).split('-').map(Number);
  return new Date(Date.UTC(year, month - 1, day)).getUTCDate() === day;
}

/** `<commit>:<prepare>` as the event store pages give it, each part 20 digits within PostgreSQL's bigint. */
const POSITION = /^(\d{20}):(\d{20})$/;
const BIGINT_MAX = 2n ** 63n - 1n;

export function isEventPosition(value: unknown): value is string {
  const parts = typeof value === 'string' ? POSITION.exec(value) : null;
  return !!parts && BigInt(parts[1]) <= BIGINT_MAX && BigInt(parts[2]) <= BIGINT_MAX;
}

function decorator(name: string, validate: (value: unknown) => boolean, message: string, options?: ValidationOptions): PropertyDecorator {
  return (target: object, propertyName: string | symbol) =>
    registerDecorator({ name, target: target.constructor, propertyName: propertyName as string, options: { message, ...options }, validator: { validate } });
}

export const IsInstant = (message: string, options?: ValidationOptions) => decorator('isInstant', isInstant, message, options);
export const IsEventPosition = (message: string, options?: ValidationOptions) => decorator('isEventPosition', isEventPosition, message, options);
