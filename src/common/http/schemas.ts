import { z } from 'zod';

/** The envelope of every paginated list. */
export function pageSchema<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), nextCursor: z.string().nullable() });
}

export const errorSchema = z.object({
  error: z.object({
    code: z.string().describe('Stable machine-readable code, e.g. validation_failed, not_found'),
    message: z.string(),
    field: z.string().optional().describe('The input field at fault, when there is one'),
    details: z.record(z.string(), z.unknown()).optional(),
  }),
});

/** An ISO 8601 time ("2027-01-31T12:00:00Z", or a date "2027-01-31" meaning its UTC midnight), as a Date. */
export const isoTime = z
  .union([z.iso.datetime({ offset: true }), z.iso.date()])
  .transform((v) => new Date(v));
