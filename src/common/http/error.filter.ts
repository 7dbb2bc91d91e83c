import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { DomainError } from '../errors';
import { mapDatabaseError } from '../../database/db-errors';

export interface ErrorBody {
  error: { code: string; message: string; field?: string; details?: Record<string, unknown> };
}

const CODE_BY_STATUS: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthenticated',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  406: 'not_acceptable',
  409: 'conflict',
  413: 'body_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
  503: 'unavailable',
};

const INTERNAL = 'internal error; the request id in X-Request-Id finds it in the log';

/**
 * An error that carries only an HTTP status and a text: Nest's own (unknown route) and Fastify's
 * body-parser errors, which Nest re-throws as plain HttpExceptions without Fastify's code.
 */
function fromStatus(status: number, message: string, req: { method: string; url: string }, bodyLimit: number): ErrorBody['error'] {
  if (status === 404 && /^Cannot /.test(message)) return { code: 'route_not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` };
  if (status === 413) return { code: 'body_too_large', message: `request body is larger than the limit of ${bodyLimit} bytes` };
  if (status === 415) return { code: 'unsupported_media_type', message: 'send the body as application/json' };
  if (status === 400 && /JSON|^Body/.test(message)) {
    return /empty/i.test(message)
      ? { code: 'malformed_json', message: 'the body is empty but Content-Type says application/json' }
      : { code: 'malformed_json', message: `the body is not valid JSON: ${message}` };
  }
  if (status >= 500) return { code: CODE_BY_STATUS[status] ?? 'internal_error', message: INTERNAL };
  return { code: CODE_BY_STATUS[status] ?? 'bad_request', message };
}

export function toErrorResponse(thrown: unknown, req: { method: string; url: string }, bodyLimit: number): { status: number; body: ErrorBody } {
  const exception = mapDatabaseError(thrown) ?? thrown;
  if (exception instanceof DomainError) {
    const error: ErrorBody['error'] = { code: exception.code, message: exception.message };
    if (exception.field) error.field = exception.field;
    if (exception.details) error.details = exception.details;
    return { status: exception.status, body: { error } };
  }
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    return { status, body: { error: fromStatus(status, exception.message, req, bodyLimit) } };
  }
  // A client error raised by Fastify that did not pass through Nest's mapping.
  const status = (exception as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return { status, body: { error: fromStatus(status, String((exception as Error).message), req, bodyLimit) } };
  }
  return { status: 500, body: { error: { code: 'internal_error', message: INTERNAL } } };
}

/** Every error leaves as {"error":{"code","message","field"}}; 5xx are logged with their cause. */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  constructor(
    private readonly log: Logger,
    private readonly bodyLimit: number,
  ) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const req = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    const { status, body } = toErrorResponse(exception, req, this.bodyLimit);
    if (status >= 500) this.log.error({ err: exception, reqId: req.id }, 'request failed');
    // A refusal that ends by itself (a rate limit, a cooldown) says when to come back.
    const after = body.error.details?.retryAfterSeconds;
    if (typeof after === 'number' && (status === 429 || status === 409)) void reply.header('retry-after', String(after));
    void reply.status(status).header('content-type', 'application/json; charset=utf-8').send(body);
  }
}
