import { ArgumentsHost, Catch, ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';
import { DomainError } from '../eventing/domain-error';
import { InvalidPositionError } from '../event-store/positions';
import { ImageKeyError } from '../qemu/image-keys';
import { notFoundBody } from './not-found';

const STATUS = { not_found: 404, conflict: 409, invalid: 400 } as const;
const ERROR = { 404: 'Not Found', 409: 'Conflict', 400: 'Bad Request' } as const;

/** ImageKeyError: an encrypted repository whose key this hub does not hold; the request is refused as it stands (409). */
@Catch(DomainError, InvalidPositionError, ImageKeyError)
export class DomainErrorFilter implements ExceptionFilter {
  catch(error: DomainError | InvalidPositionError | ImageKeyError, host: ArgumentsHost): void {
    const status = error instanceof DomainError ? STATUS[error.kind] : error instanceof ImageKeyError ? 409 : 400;
    host.switchToHttp().getResponse<Response>().status(status).json(status === 404 ? notFoundBody(error.message) : { statusCode: status, error: ERROR[status], message: error.message });
  }
}
