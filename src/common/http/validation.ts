import { createZodValidationPipe } from 'nestjs-zod';
import type { ZodError } from 'zod';
import { ValidationError } from '../errors';

/** zod failures become 400 validation_failed naming the first bad field, with all of them in details. */
export const ValidationPipe = createZodValidationPipe({
  createValidationException: (error: unknown) => {
    const issues = (error as ZodError).issues ?? [];
    const fields = issues.map((i) => ({ field: i.path.join('.') || '(body)', message: i.message }));
    const first = fields[0];
    return new ValidationError(first ? `${first.field}: ${first.message}` : 'invalid input', first?.field, { issues: fields });
  },
});
