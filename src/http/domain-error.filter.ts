import { ArgumentsHost, Catch, ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';
import { DomainError } from '../eventing/domain-error';
import { InvalidPositionError } from '../event-store/positions';

const STATUS = { not_found: 404, conflict: 409, invalid: 400 } as const;
const ERROR = { 404: 'Not Found', 409: 'Conflict', 400: 'Bad Request' } as const;

@Catch(DomainError, InvalidPositionError)
export class DomainErrorFilter implements ExceptionFilter {
  catch(error: DomainError | InvalidPositionError, host: ArgumentsHost): void {
    const status = error instanceof DomainError ? STATUS[error.kind] : 400;
    host.switchToHttp().getResponse<Response>().status(status).json({ statusCode: status, error: ERROR[status], message: error.message });
  }
}
