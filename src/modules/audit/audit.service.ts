import { Injectable } from '@nestjs/common';
import { decodeCursor, toPage, type Page } from '../../common/pagination';
import { requestContext } from '../../common/request-context';
import { ValidationError } from '../../common/errors';
import { AuditRepository, type AuditFilter } from './audit.repository';
import type { AuditEventEntity } from './audit-event.entity';

export interface AuditEntry {
  action: string;
  targetType: string;
  targetId?: string | null;
  /** What changed, as plain data. Secrets are never passed here; the scrub is a safety net. */
  changes?: Record<string, unknown>;
}

export interface AuditEventView {
  id: string;
  at: string;
  source: string;
  actor: { name: string; kind: string; id: string | null; role: string | null };
  action: string;
  target: { type: string; id: string | null };
  requestId: string | null;
  changes: Record<string, unknown>;
}

/** Keys that name a secret: "password", "bmcPassword", "apiToken", "private_key"; not "tokenId". */
const SECRET_KEY = /(password|passwd|passphrase|secret|token|private_?key|credentials?|^key)$/i;

export function scrub(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(scrub);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, SECRET_KEY.test(k) ? '[redacted]' : scrub(v)]),
    );
  }
  return value;
}

@Injectable()
export class AuditService {
  constructor(private readonly repo: AuditRepository) {}

  /**
   * Record a change. Call it inside the same db.transaction as the change itself, so either
   * both are kept or neither. Actor, source and request id come from the request context.
   */
  async record(entry: AuditEntry): Promise<void> {
    const ctx = requestContext.get();
    const actor = ctx?.actor;
    await this.repo.insert({
      source: ctx?.source ?? 'system',
      actor: actor?.name ?? 'system',
      actorKind: actor?.kind ?? 'system',
      actorId: actor?.id ?? null,
      actorRole: actor?.role ?? null,
      action: entry.action,
      targetType: entry.targetType,
      targetId: entry.targetId ?? null,
      requestId: ctx?.requestId ?? null,
      changes: (scrub(entry.changes ?? {}) as Record<string, unknown>),
    });
  }

  async list(filter: Omit<AuditFilter, 'beforeId'>, limit: number, cursor?: string): Promise<Page<AuditEventView>> {
    const beforeId = decodeCursor(cursor);
    if (beforeId !== undefined && !/^\d+$/.test(beforeId)) throw new ValidationError('cursor is not one this API handed out', 'cursor');
    if (filter.since && filter.until && filter.since >= filter.until) throw new ValidationError('since must be before until', 'since');
    const rows = await this.repo.list({ ...filter, beforeId }, limit + 1);
    return toPage(rows, limit, (r) => r.id, toView);
  }
}

function toView(e: AuditEventEntity): AuditEventView {
  return {
    id: String(e.id),
    at: e.at.toISOString(),
    source: e.source,
    actor: { name: e.actor, kind: e.actorKind, id: e.actorId, role: e.actorRole },
    action: e.action,
    target: { type: e.targetType, id: e.targetId },
    requestId: e.requestId,
    changes: e.changes,
  };
}
