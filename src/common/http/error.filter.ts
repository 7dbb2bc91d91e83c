import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { DomainError } from '../errors';

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

const CODE_OF_STATUS: Record<number, string> = {
  413: 'FST_ERR_CTP_BODY_TOO_LARGE',
  415: 'FST_ERR_CTP_INVALID_MEDIA_TYPE',
};

/** Fastify's own errors (body parsing and limits) by their code. */
function fromFastify(err: { code?: string; statusCode?: number; message: string }, bodyLimit: number): ErrorBody['error'] & { status: number } | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, code: 'body_too_large', message: `request body is larger than the limit of ${bodyLimit} bytes` };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, code: 'unsupported_media_type', message: 'send the body as application/json' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, code: 'malformed_json', message: 'the body is empty but Content-Type says application/json' };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { status: 400, code: 'bad_request', message: 'Content-Length does not match the body' };
  }
  if (err.statusCode === 400 && (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY')) {
    if (/empty/i.test(err.message)) return { status: 400, code: 'malformed_json', message: 'the body is empty but Content-Type says application/json' };
    return { status: 400, code: 'malformed_json', message: `the body is not valid JSON: ${err.message}` };
  }
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return { status: err.statusCode, code: CODE_BY_STATUS[err.statusCode] ?? 'bad_request', message: err.message };
  }
  return undefined;
}

export function toErrorResponse(exception: unknown, req: { method: string; url: string }, bodyLimit: number): { status: number; body: ErrorBody } {
  if (exception instanceof DomainError) {
    const error: ErrorBody['error'] = { code: exception.code, message: exception.message };
    if (exception.field) error.field = exception.field;
    if (exception.details) error.details = exception.details;
    return { status: exception.status, body: { error } };
  }
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    if (status === 404 && /^Cannot /.test(exception.message)) {
      return { status, body: { error: { code: 'route_not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } } };
    }
    // Nest re-throws Fastify's body-parser errors as plain HttpExceptions: status and text are all that is left.
    const parser = fromFastify({ statusCode: status, message: exception.message, code: status === 400 && /JSON|^Body/.test(exception.message) ? 'FST_ERR_CTP_INVALID_JSON_BODY' : CODE_OF_STATUS[status] }, bodyLimit);
    if (parser && parser.code !== 'bad_request') {
      const { status: s, ...error } = parser;
      return { status: s, body: { error } };
    }
    return { status, body: { error: { code: CODE_BY_STATUS[status] ?? (status < 500 ? 'bad_request' : 'internal_error'), message: exception.message } } };
  }
  if (exception && typeof exception === 'object' && 'message' in exception) {
    const f = fromFastify(exception as never, bodyLimit);
    if (f) {
      const { status, ...error } = f;
      return { status, body: { error } };
    }
  }
  return { status: 500, body: { error: { code: 'internal_error', message: 'internal error; the request id in X-Request-Id finds it in the log' } } };
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
    void reply.status(status).header('content-type', 'application/json; charset=utf-8').send(body);
  }
}
