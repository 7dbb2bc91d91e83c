import { Injectable } from '@nestjs/common';
import { AppConfig, type Config } from '../../config/config';
import { Inject } from '@nestjs/common';
import { Database } from '../../database/database';
import { NotFoundError, ValidationError } from '../../common/errors';
import { randomToken, safeEqual, sha256Hex } from '../../common/crypto';
import { decodeCursor, encodeCursor, type Page } from '../../common/pagination';
import type { Actor } from '../../common/request-context';
import { requestContext } from '../../common/request-context';
import type { Role } from '../../common/roles';
import { AuditService } from '../audit/audit.service';
import { TokenRepository } from './token.repository';
import type { ApiTokenEntity } from './api-token.entity';

export const TOKEN_PREFIX = 'rs_';
/** last_used_at is written at most this often per token: reads must not turn into writes. */
const TOUCH_INTERVAL_MS = 60_000;

export interface TokenView {
  id: string;
  name: string;
  role: Role;
  prefix: string;
  createdAt: string;
  createdBy: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export interface CreatedToken extends TokenView {
  /** The secret itself: shown once, never stored. */
  token: string;
}

@Injectable()
export class TokenService {
  constructor(
    private readonly tokens: TokenRepository,
    private readonly audit: AuditService,
    private readonly db: Database,
    @Inject(AppConfig) private readonly config: Config,
  ) {}

  async create(input: { name: string; role: Role; expiresAt?: Date }): Promise<CreatedToken> {
    if (input.expiresAt && input.expiresAt.getTime() <= Date.now()) throw new ValidationError('expiresAt must be in the future', 'expiresAt');
    const secret = randomToken();
    const token = `${TOKEN_PREFIX}${secret}`;
    const createdBy = requestContext.actorName();
    return this.db.transaction(async () => {
      const row = await this.tokens.insert({
        name: input.name,
        role: input.role,
        tokenHash: sha256Hex(token),
        prefix: `${TOKEN_PREFIX}${secret.slice(0, 6)}`,
        createdBy,
        expiresAt: input.expiresAt ?? null,
      });
      await this.audit.record({
        action: 'token.create',
        targetType: 'api_token',
        targetId: row.id,
        changes: { name: row.name, role: row.role, expiresAt: row.expiresAt?.toISOString() ?? null },
      });
      return { ...toView(row), token };
    });
  }

  async list(limit: number, includeRevoked: boolean, cursor?: string): Promise<Page<TokenView>> {
    const after = parseTokenCursor(decodeCursor(cursor));
    const rows = await this.tokens.list(limit + 1, includeRevoked, after);
    const more = rows.length > limit;
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return { items: items.map(toView), nextCursor: more ? encodeCursor(`${last.createdAt.toISOString()}|${last.id}`) : null };
  }

  async get(id: string): Promise<TokenView> {
    const row = await this.tokens.findById(id);
    if (!row) throw new NotFoundError('token', id);
    return toView(row);
  }

  /** Revoke at once; revoking a revoked token changes nothing and is not audited again. */
  async revoke(id: string): Promise<TokenView> {
    const by = requestContext.actorName();
    return this.db.transaction(async () => {
      const row = await this.tokens.findById(id);
      if (!row) throw new NotFoundError('token', id);
      if (await this.tokens.markRevoked(id, by)) {
        await this.audit.record({ action: 'token.revoke', targetType: 'api_token', targetId: id, changes: { name: row.name, role: row.role } });
      }
      return toView((await this.tokens.findById(id))!);
    });
  }

  /** The actor behind a bearer token, or null when it is unknown, revoked or expired. */
  async authenticate(token: string): Promise<Actor | null> {
    const bootstrap = this.config.auth.bootstrapToken;
    if (bootstrap && safeEqual(token, bootstrap)) return { kind: 'bootstrap', name: 'bootstrap', role: 'admin' };
    if (!token.startsWith(TOKEN_PREFIX) || token.length > 200) return null;
    const row = await this.tokens.findActiveByHash(sha256Hex(token));
    if (!row) return null;
    if (!row.lastUsedAt || Date.now() - row.lastUsedAt.getTime() > TOUCH_INTERVAL_MS) {
      // Best effort and off the request path: a failed touch must not fail the request.
      this.tokens.touch(row.id).catch(() => undefined);
    }
    return { kind: 'token', id: row.id, name: row.name, role: row.role };
  }

  /**
   * On the first start against an empty database with no bootstrap token configured, create
   * an admin token so someone can log in. Several processes may start at once: one creates it.
   */
  async ensureInitialAdmin(): Promise<CreatedToken | null> {
    if (this.config.auth.bootstrapToken) return null;
    return this.db.withLock('racksmith:initial-admin', async () => {
      if ((await this.tokens.count()) > 0) return null;
      return this.create({ name: 'initial-admin', role: 'admin' });
    });
  }
}

function parseTokenCursor(text: string | undefined): { createdAt: Date; id: string } | undefined {
  if (text === undefined) return undefined;
  const [at, id] = text.split('|');
  const createdAt = new Date(at);
  if (!id || Number.isNaN(createdAt.getTime()) || !/^[0-9a-f-]{36}$/.test(id)) throw new ValidationError('cursor is not one this API handed out', 'cursor');
  return { createdAt, id };
}

export function toView(t: ApiTokenEntity): TokenView {
  return {
    id: t.id,
    name: t.name,
    role: t.role,
    prefix: t.prefix,
    createdAt: t.createdAt.toISOString(),
    createdBy: t.createdBy,
    expiresAt: t.expiresAt?.toISOString() ?? null,
    lastUsedAt: t.lastUsedAt?.toISOString() ?? null,
    revokedAt: t.revokedAt?.toISOString() ?? null,
  };
}
