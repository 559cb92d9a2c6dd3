/** A rule of the domain said no. The HTTP layer maps the kind to a status code. */
export class DomainError extends Error {
  constructor(
    readonly kind: 'not_found' | 'conflict' | 'invalid',
    message: string,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}
