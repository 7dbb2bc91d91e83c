import { Inject, Injectable } from '@nestjs/common';
import { AppConfig, type Config } from '../../config/config';
import { Database } from '../../database/database';
import { ConflictError, ForbiddenError, NotFoundError, RateLimitedError, UnauthenticatedError, ValidationError } from '../../common/errors';
import { randomToken, sha256Hex } from '../../common/crypto';
import { decodeCursor, toPage, type Page } from '../../common/pagination';
import { requestContext, type Actor } from '../../common/request-context';
import { AuditService } from '../audit/audit.service';
import type { CustomerAuth } from '../auth/customer-auth';
import { CustomerRepository, type CustomerRow, type CustomerTokenRow } from './customer.repository';

export const CUSTOMER_TOKEN_PREFIX = 'rsc_';
const LOGIN_CODE_PREFIX = 'rsl_';
/** Live API tokens a customer may hold at once (sessions from login links not counted). */
export const MAX_CUSTOMER_TOKENS = 20;
const TOUCH_INTERVAL_MS = 60_000;

export interface CustomerView {
  id: string;
  name: string;
  email: string | null;
  sshKeys: string[];
  disabled: { at: string; reason: string | null } | null;
  createdAt: string;
  updatedAt: string;
}

export interface CustomerTokenView {
  id: string;
  customerId: string;
  name: string;
  kind: 'api' | 'session';
  prefix: string;
  createdAt: string;
  createdBy: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export const customerView = (c: CustomerRow): CustomerView => ({
  id: c.id,
  name: c.name,
  email: c.email,
  sshKeys: c.ssh_keys,
  disabled: c.disabled_at ? { at: c.disabled_at.toISOString(), reason: c.disabled_reason } : null,
  createdAt: c.created_at.toISOString(),
  updatedAt: c.updated_at.toISOString(),
});

const tokenView = (t: CustomerTokenRow): CustomerTokenView => ({
  id: t.id,
  customerId: t.customer_id,
  name: t.name,
  kind: t.kind,
  prefix: t.prefix,
  createdAt: t.created_at.toISOString(),
  createdBy: t.created_by,
  expiresAt: t.expires_at?.toISOString() ?? null,
  lastUsedAt: t.last_used_at?.toISOString() ?? null,
  revokedAt: t.revoked_at?.toISOString() ?? null,
});

/** A sliding one-minute window per customer, in this process. */
class RateWindow {
  private readonly hits = new Map<string, number[]>();

  constructor(private readonly perMinute: number) {}

  /** null when admitted; otherwise the seconds until the oldest request in the window leaves it. */
  take(key: string, now = Date.now()): number | null {
    const list = (this.hits.get(key) ?? []).filter((t) => t > now - 60_000);
    if (list.length >= this.perMinute) {
      this.hits.set(key, list);
      return Math.max(1, Math.ceil((list[0]! + 60_000 - now) / 1000));
    }
    list.push(now);
    this.hits.set(key, list);
    if (this.hits.size > 10_000) for (const [k, v] of this.hits) if (!v.some((t) => t > now - 60_000)) this.hits.delete(k);
    return null;
  }
}

/**
 * Customers as the billing system keeps them, their tokens (bound to that one customer) and
 * one-time login links; and how a customer's token is let in (CustomerAuth, used by the guard).
 */
@Injectable()
export class CustomersService implements CustomerAuth {
  private readonly window: RateWindow;

  constructor(
    private readonly repo: CustomerRepository,
    private readonly audit: AuditService,
    private readonly db: Database,
    @Inject(AppConfig) private readonly config: Config,
  ) {
    this.window = new RateWindow(config.customer.rateLimit);
  }

  async upsert(id: string, input: { name: string; email?: string | null; sshKeys?: string[] }): Promise<{ customer: CustomerView; created: boolean }> {
    return this.db.transaction(async () => {
      const { row, created, before } = await this.repo.upsert({ id, ...input });
      const same = before && before.name === row.name && before.email === row.email && JSON.stringify(before.ssh_keys) === JSON.stringify(row.ssh_keys);
      if (same) return { customer: customerView(row), created };
      const changes = { name: row.name, email: row.email, sshKeys: row.ssh_keys.length };
      await this.audit.record({ action: created ? 'customer.create' : 'customer.update', targetType: 'customer', targetId: id, changes });
      return { customer: customerView(row), created };
    });
  }

  async get(id: string): Promise<CustomerView> {
    const row = await this.repo.get(id);
    if (!row) throw new NotFoundError('customer', id);
    return customerView(row);
  }

  async list(limit: number, cursor?: string, search?: string): Promise<Page<CustomerView>> {
    const rows = await this.repo.list(limit + 1, decodeCursor(cursor), search);
    return toPage(rows, limit, (r) => r.id, customerView);
  }

  /** Disabling stops every token of the customer at once (the tokens stay, for the audit); enabling lets them in again. */
  async setDisabled(id: string, disabled: boolean, reason?: string): Promise<CustomerView> {
    return this.db.transaction(async () => {
      const before = await this.repo.get(id);
      if (!before) throw new NotFoundError('customer', id);
      const row = (await this.repo.setDisabled(id, disabled, reason ?? null))!;
      if (!!before.disabled_at !== disabled) await this.audit.record({ action: disabled ? 'customer.disable' : 'customer.enable', targetType: 'customer', targetId: id, changes: { reason: reason ?? null } });
      return customerView(row);
    });
  }

  /** A new token for the customer: the secret is in this answer only. */
  async createToken(customerId: string, input: { name: string; expiresAt?: Date }, kind: 'api' | 'session' = 'api'): Promise<CustomerTokenView & { token: string }> {
    if (input.expiresAt && input.expiresAt.getTime() <= Date.now()) throw new ValidationError('expiresAt must be in the future', 'expiresAt');
    return this.db.transaction(async () => {
      const customer = await this.repo.get(customerId);
      if (!customer) throw new NotFoundError('customer', customerId);
      if (kind === 'api' && (await this.repo.liveTokenCount(customerId)) >= MAX_CUSTOMER_TOKENS) {
        throw new ConflictError('too_many_tokens', `customer ${customerId} has ${MAX_CUSTOMER_TOKENS} live tokens, the most allowed: revoke one first`, { limit: MAX_CUSTOMER_TOKENS }, 'name');
      }
      const secret = randomToken();
      const token = `${CUSTOMER_TOKEN_PREFIX}${secret}`;
      const row = await this.repo.insertToken({ customerId, name: input.name, kind, hash: sha256Hex(token), prefix: `${CUSTOMER_TOKEN_PREFIX}${secret.slice(0, 6)}`, createdBy: requestContext.actorName(), expiresAt: input.expiresAt ?? null });
      await this.audit.record({ action: 'customer.token.create', targetType: 'customer', targetId: customerId, changes: { tokenId: row.id, name: row.name, kind, expiresAt: row.expires_at?.toISOString() ?? null } });
      return { ...tokenView(row), token };
    });
  }

  async tokens(customerId: string, includeRevoked = false): Promise<CustomerTokenView[]> {
    if (!(await this.repo.get(customerId))) throw new NotFoundError('customer', customerId);
    return (await this.repo.tokens(customerId, includeRevoked)).map(tokenView);
  }

  /** Revokes one token of this customer; another customer's token id is not found. */
  async revokeToken(customerId: string, tokenId: string): Promise<CustomerTokenView> {
    return this.db.transaction(async () => {
      const done = await this.repo.revokeToken(customerId, tokenId, requestContext.actorName());
      if (!done) throw new NotFoundError('token', tokenId);
      if (done.changed) await this.audit.record({ action: 'customer.token.revoke', targetType: 'customer', targetId: customerId, changes: { tokenId, name: done.row.name } });
      return tokenView(done.row);
    });
  }

  /** A one-time login link: the code works once, within customer.loginLinkTtl. */
  async createLoginLink(customerId: string, baseUrl: string): Promise<{ customerId: string; code: string; url: string; expiresAt: string }> {
    return this.db.transaction(async () => {
      if (!(await this.repo.get(customerId))) throw new NotFoundError('customer', customerId);
      const code = `${LOGIN_CODE_PREFIX}${randomToken()}`;
      const { expires_at } = await this.repo.insertLoginLink({ customerId, hash: sha256Hex(code), createdBy: requestContext.actorName(), ttlSeconds: this.config.customer.loginLinkTtl });
      await this.audit.record({ action: 'customer.login-link.create', targetType: 'customer', targetId: customerId, changes: { expiresAt: expires_at.toISOString() } });
      return { customerId, code, url: `${baseUrl}/my/login#${code}`, expiresAt: expires_at.toISOString() };
    });
  }

  /** Turns a login link's code into a session token (once); an unknown, used or expired code is a 401. */
  async redeemLoginLink(code: string): Promise<CustomerTokenView & { token: string }> {
    if (!code.startsWith(LOGIN_CODE_PREFIX) || code.length > 200) throw new UnauthenticatedError('this login link is unknown, used or expired: ask for a new one');
    return this.db.transaction(async () => {
      const customerId = await this.repo.redeemLoginLink(sha256Hex(code));
      if (!customerId) throw new UnauthenticatedError('this login link is unknown, used or expired: ask for a new one');
      const customer = (await this.repo.get(customerId))!;
      if (customer.disabled_at) throw new ForbiddenError(`customer ${customerId} is disabled${customer.disabled_reason ? `: ${customer.disabled_reason}` : ''}`);
      const ctx = requestContext.get();
      return requestContext.run({ ...(ctx ?? { source: 'api' }), actor: { kind: 'customer', name: `customer:${customerId}`, role: 'customer', customerId } }, () =>
        this.createToken(customerId, { name: 'login link session', expiresAt: new Date(Date.now() + this.config.customer.sessionTtl * 1000) }, 'session'),
      );
    });
  }

  // CustomerAuth

  isCustomerToken(token: string): boolean {
    return token.startsWith(CUSTOMER_TOKEN_PREFIX);
  }

  async authenticate(token: string): Promise<Actor | null> {
    if (token.length > 200) return null;
    const row = await this.repo.findActiveToken(sha256Hex(token));
    if (!row) return null;
    if (!row.last_used_at || Date.now() - row.last_used_at.getTime() > TOUCH_INTERVAL_MS) this.repo.touchToken(row.id).catch(() => undefined);
    if (row.disabled_at) throw new ForbiddenError(`customer ${row.customer_id} is disabled: ask support`);
    return { kind: 'customer', id: row.id, name: `customer:${row.customer_id}`, role: 'customer', customerId: row.customer_id };
  }

  async admit(actor: Actor): Promise<void> {
    const wait = this.window.take(actor.customerId!);
    if (wait !== null) {
      const limit = `${this.config.customer.rateLimit} requests per minute per customer`;
      throw new RateLimitedError(`customer ${actor.customerId} made more than ${limit} (RACKSMITH_CUSTOMER_RATE_LIMIT); retry in ${wait} s`, { limit, retryAfterSeconds: wait });
    }
  }
}
