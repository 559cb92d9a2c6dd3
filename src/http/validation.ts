import { ValidationPipe } from '@nestjs/common';

/** Unknown fields are refused, not silently dropped: a typo in a request must not change what happens. */
export function strictValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    transformOptions: { enableImplicitConversion: false },
    stopAtFirstError: false,
  });
}
