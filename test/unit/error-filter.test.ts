import { HttpException, NotFoundException } from '@nestjs/common';
import { toErrorResponse } from '../../src/common/http/error.filter';
import { ConflictError, ValidationError } from '../../src/common/errors';

const req = { method: 'GET', url: '/x?y=1' };

describe('error responses', () => {
  it('keeps a domain error\'s code, field and details', () => {
    expect(toErrorResponse(new ValidationError('name: too long', 'name'), req, 1024)).toEqual({
      status: 400,
      body: { error: { code: 'validation_failed', message: 'name: too long', field: 'name' } },
    });
    expect(toErrorResponse(new ConflictError('unit_taken', 'U12 is taken', { unit: 12 }), req, 1024).body.error.details).toEqual({ unit: 12 });
  });

  it('names an unknown route', () => {
    expect(toErrorResponse(new NotFoundException('Cannot GET /x?y=1'), req, 1024)).toEqual({
      status: 404,
      body: { error: { code: 'route_not_found', message: 'no route GET /x' } },
    });
  });

  it('maps body-parser failures to stable codes', () => {
    expect(toErrorResponse(new HttpException('Request body is too large', 413), req, 2048).body.error).toEqual({
      code: 'body_too_large',
      message: 'request body is larger than the limit of 2048 bytes',
    });
    expect(toErrorResponse(new HttpException("Body is not valid JSON but content-type is set to 'application/json'", 400), req, 1).body.error.code).toBe('malformed_json');
    expect(toErrorResponse(new HttpException('Unsupported Media Type', 415), req, 1).body.error.code).toBe('unsupported_media_type');
  });

  it('hides the cause of an unexpected error', () => {
    const res = toErrorResponse(new Error('password=hunter2 leaked'), req, 1);
    expect(res.status).toBe(500);
    expect(res.body.error.code).toBe('internal_error');
    expect(JSON.stringify(res.body)).not.toContain('hunter2');
  });
});
