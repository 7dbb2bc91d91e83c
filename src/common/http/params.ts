import { ParseUUIDPipe } from '@nestjs/common';
import { ValidationError } from '../errors';

/** A path id that must be a UUID: 400 naming `id` otherwise (instead of a database error). */
export const UuidParam = new ParseUUIDPipe({ exceptionFactory: () => new ValidationError('id must be a UUID', 'id') });
