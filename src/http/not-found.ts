import { DomainError } from '../eventing/domain-error';

/**
 * The 404 for something the caller's tenant may not see is the 404 for something that does not exist, to the
 * byte: anything else (another message, another key order) tells a tenant's token that the id is real. Routes
 * answer both with this one error, whose body only DomainErrorFilter writes (notFoundBody).
 */
export function notFound(message: string): DomainError {
  return new DomainError('not_found', message);
}

export function notFoundBody(message: string): { statusCode: 404; error: 'Not Found'; message: string } {
  return { statusCode: 404, error: 'Not Found', message };
}
