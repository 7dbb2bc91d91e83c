/**
 * Domain errors: a stable machine code, a message a person can act on, an HTTP status and,
 * for bad input, the field at fault. The HTTP layer turns them into
 * {"error":{"code","message","field"}} and nothing else.
 */
export class DomainError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly field?: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

export class ValidationError extends DomainError {
  constructor(message: string, field?: string, details?: Record<string, unknown>) {
    super('validation_failed', message, 400, field, details);
  }
}

export class NotFoundError extends DomainError {
  constructor(what: string, id: string | number) {
    super('not_found', `${what} ${id} does not exist`, 404);
  }
}

export class ConflictError extends DomainError {
  constructor(code: string, message: string, details?: Record<string, unknown>, field?: string) {
    super(code, message, 409, field, details);
  }
}

export class UnauthenticatedError extends DomainError {
  constructor(message = 'a valid API token is required: send "Authorization: Bearer <token>"') {
    super('unauthenticated', message, 401);
  }
}

export class ForbiddenError extends DomainError {
  constructor(message: string) {
    super('forbidden', message, 403);
  }
}

/** A body field names something that does not exist: 400, with the field. */
export class MissingReferenceError extends DomainError {
  constructor(what: string, id: string, field: string) {
    super('reference_not_found', `${what} ${id} does not exist`, 400, field);
  }
}

/** Too many requests: 429 naming the limit, with the seconds until a retry can succeed. */
export class RateLimitedError extends DomainError {
  constructor(message: string, details: { limit: string; retryAfterSeconds: number }) {
    super('rate_limited', message, 429, undefined, details);
  }
}
