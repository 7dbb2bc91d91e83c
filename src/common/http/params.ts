import { ParseUUIDPipe } from '@nestjs/common';
import { ValidationError } from '../errors';

/** A path id that must be a UUID: 400 naming `id` otherwise (instead of a database error). */
export const UuidParam = new ParseUUIDPipe({ exceptionFactory: () => new ValidationError('id must be a UUID', 'id') });

/** A path name checked against its schema: 400 naming `field` with `expected` otherwise. */
export function namedParam(schema: { safeParse(v: unknown): { success: boolean } }, field: string, expected: string): (value: string) => string {
  return (value) => {
    if (!schema.safeParse(value).success) throw new ValidationError(`${field}: expected ${expected}`, field);
    return value;
  };
}
