import { applyDecorators, BadRequestException, createParamDecorator, ExecutionContext } from '@nestjs/common';
import { ApiHeader } from '@nestjs/swagger';
import type { Request } from 'express';
import { CAUSATION_HEADER, VALID_EVENT_ID } from '../wire/backup-protocol';

/**
 * An agent's report says which hub event it answers (`X-Causation-Id`): the events it records name that event as
 * their cause, so a report without one would leave a hole in the audit story. Whether the id is this job's
 * asking event is the handler's to decide (it reads the job's stream); here only its presence and form.
 */
export const AgentCause = createParamDecorator((_: unknown, ctx: ExecutionContext): string => {
  const value = ctx.switchToHttp().getRequest<Request>().header(CAUSATION_HEADER);
  if (value === undefined) throw new BadRequestException(`${CAUSATION_HEADER} is required: the hub event that asked the agent for this work`);
  if (!VALID_EVENT_ID.test(value)) throw new BadRequestException(`${CAUSATION_HEADER} must be an event id (a lowercase UUID)`);
  return value;
});

/** The header as the API documents it, on the report endpoints that take it. */
export const ApiAgentCause = (asker: string) =>
  applyDecorators(ApiHeader({ name: CAUSATION_HEADER.toLowerCase(), required: true, description: `the hub event that asked the agent for the work (${asker}), as the request carried it: the cause of the events the report records` }));
