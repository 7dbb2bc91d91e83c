import { z } from 'zod';
import { ValidationError } from './errors';

/**
 * Cursor pagination: `?limit=&cursor=`; answers `{ items, nextCursor }`. The cursor is opaque to
 * clients (base64url of the last row's sort key), so it stays valid while rows are added.
 */
export const pageQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().max(200).optional(),
});
export type PageQuery = z.infer<typeof pageQuerySchema>;

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export function encodeCursor(key: string | number): string {
  return Buffer.from(String(key), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!text || encodeCursor(text) !== cursor) throw new ValidationError('cursor is not one this API handed out', 'cursor');
  return text;
}

/** Rows were fetched with limit + 1: the extra row only tells that another page exists. */
export function toPage<R, T>(rows: R[], limit: number, key: (row: R) => string | number, map: (row: R) => T): Page<T> {
  const more = rows.length > limit;
  const items = more ? rows.slice(0, limit) : rows;
  return { items: items.map(map), nextCursor: more ? encodeCursor(key(items[items.length - 1])) : null };
}

/**
 * Newest-first pages keyed by (time, id): `fetch` gets limit + 1 and the last row's pair from the
 * cursor ("rows before this"); the cursor handed out is the last row's pair.
 */
export async function newestFirstPage<R, T>(
  cursor: string | undefined,
  limit: number,
  fetch: (limit: number, before?: { at: string; id: string }) => Promise<R[]>,
  key: (row: R) => { at: Date; id: string },
  map: (row: R) => T,
): Promise<Page<T>> {
  const raw = decodeCursor(cursor);
  const cut = raw?.indexOf('|') ?? -1;
  if (raw !== undefined && cut < 1) throw new ValidationError('cursor is not one this API handed out', 'cursor');
  const rows = await fetch(limit + 1, raw ? { at: raw.slice(0, cut), id: raw.slice(cut + 1) } : undefined);
  return toPage(rows, limit, (r) => `${key(r).at.toISOString()}|${key(r).id}`, map);
}
