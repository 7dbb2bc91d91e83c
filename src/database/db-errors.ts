import { ConflictError, DomainError, ValidationError } from '../common/errors';

/**
 * What a PostgreSQL constraint violation means to an API user. The invariants are enforced by
 * the database; this turns its refusals into domain errors with stable codes and the field at
 * fault. Modules describe their constraints with `describeConstraints`.
 */
interface ConstraintMeaning {
  code: string;
  message: string;
  field?: string;
  status?: number;
}

const meanings = new Map<string, ConstraintMeaning>();

export function describeConstraints(entries: Record<string, ConstraintMeaning>): void {
  for (const [name, meaning] of Object.entries(entries)) meanings.set(name, meaning);
}

interface PgError {
  code?: string;
  constraint?: string;
  detail?: string;
  message?: string;
  column?: string;
  table?: string;
}

function parseDetail(detail: string | undefined): Record<string, unknown> | undefined {
  if (!detail) return undefined;
  try {
    const v = JSON.parse(detail);
    return v && typeof v === 'object' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** A DomainError for a database refusal we understand, else undefined. */
export function mapDatabaseError(err: unknown): DomainError | undefined {
  if (!err || typeof err !== 'object') return undefined;
  const e = err as PgError;
  // pg-pool: every connection busy for the whole connect timeout. The request may be sent again.
  if (!e.code && typeof e.message === 'string' && /^timeout exceeded when trying to connect$/.test(e.message)) {
    return new DomainError('database_busy', 'every database connection of this process stayed busy for the connect timeout; try again', 503);
  }
  const known = e.constraint ? meanings.get(e.constraint) : undefined;
  switch (e.code) {
    case '23505': { // unique_violation: say which value ("Key (mac)=(52:54:...) already exists.")
      const key = /^Key \((.+)\)=\((.*)\) already exists/.exec(e.detail ?? '');
      const details = key ? { [key[1].replace(/^lower\((.+)\)$/, '$1')]: key[2] } : undefined;
      const value = key ? `: ${key[2]}` : '';
      if (known) return new DomainError(known.code, `${known.message}${value}`, known.status ?? 409, known.field, details);
      return new ConflictError('already_exists', `already exists (${e.constraint ?? 'unique'})${value}`, details);
    }
    case '23P01': // exclusion_violation
      if (known) return new DomainError(known.code, known.message, known.status ?? 409, known.field);
      return new ConflictError('already_exists', `already exists (${e.constraint ?? 'unique'})`);
    case '23503': // foreign_key_violation
      if (known) return new DomainError(known.code, known.message, known.status ?? 409, known.field);
      // "is still referenced from table x" on delete; "is not present in table x" on insert.
      if (/still referenced/.test(e.detail ?? '')) {
        const table = /from table "([^"]+)"/.exec(e.detail ?? '')?.[1];
        return new ConflictError('in_use', `still in use${table ? ` by ${table.replace(/_/g, ' ')}` : ''}: remove those first`);
      }
      return new ValidationError(`a referenced ${/table "([^"]+)"/.exec(e.detail ?? '')?.[1] ?? 'row'} does not exist`);
    case '23514': // check_violation
      if (known) return new DomainError(known.code, known.message, known.status ?? 400, known.field);
      return new ValidationError(`a value is out of range (${e.constraint ?? 'check'})`);
    case '22P02': // invalid_text_representation (a malformed uuid, macaddr, ...)
    case '22007': // invalid_datetime_format
      return new ValidationError((e.message ?? 'malformed value').replace(/^invalid input syntax for type /, 'malformed '));
    case 'RS001':
      return new ConflictError('power_budget_exceeded', e.message ?? 'power budget exceeded', parseDetail(e.detail));
    case 'RS003':
      return new ConflictError('illegal_transition', e.message ?? 'illegal lifecycle transition', parseDetail(e.detail));
    case 'RS002':
      return new ConflictError('does_not_fit', e.message ?? 'does not fit', parseDetail(e.detail), 'placement');
  }
  return undefined;
}
