import { ArgumentsHost, Catch, ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';
import { VolumePathError } from './mounting';

const ERROR = { 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found' } as const;

/** A refused path inside a volume: its status (400 malformed, 403 escape, 404 missing) goes straight to HTTP. */
@Catch(VolumePathError)
export class VolumePathErrorFilter implements ExceptionFilter {
  catch(error: VolumePathError, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    if (res.headersSent) {
      res.destroy(error);
      return;
    }
    res.status(error.status).json({ statusCode: error.status, error: ERROR[error.status], code: error.code, message: `${error.message}: ${JSON.stringify(error.userPath)}` });
  }
}
