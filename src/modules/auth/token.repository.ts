import { Injectable } from '@nestjs/common';
import { IsNull } from 'typeorm';
import { Database } from '../../database/database';
import { ApiTokenEntity } from './api-token.entity';

@Injectable()
export class TokenRepository {
  constructor(private readonly db: Database) {}

  private get repo() {
    return this.db.manager().getRepository(ApiTokenEntity);
  }

  async insert(token: Pick<ApiTokenEntity, 'name' | 'role' | 'tokenHash' | 'prefix' | 'createdBy' | 'expiresAt'>): Promise<ApiTokenEntity> {
    const { identifiers } = await this.repo.insert(token);
    return this.repo.findOneByOrFail({ id: identifiers[0].id });
  }

  findById(id: string): Promise<ApiTokenEntity | null> {
    return this.repo.findOneBy({ id });
  }

  /** The live token with this hash: not revoked, not expired. On every request: plain SQL. */
  async findActiveByHash(hash: string): Promise<Pick<ApiTokenEntity, 'id' | 'name' | 'role' | 'lastUsedAt'> | null> {
    const rows: { id: string; name: string; role: ApiTokenEntity['role']; last_used_at: Date | null }[] = await this.db
      .manager()
      .query(
        'SELECT id, name, role, last_used_at FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())',
        [hash],
      );
    const row = rows[0];
    return row ? { id: row.id, name: row.name, role: row.role, lastUsedAt: row.last_used_at } : null;
  }

  /** Oldest first, ids after `afterId` in (created_at, id) order. */
  list(limit: number, includeRevoked: boolean, after?: { createdAt: Date; id: string }): Promise<ApiTokenEntity[]> {
    const qb = this.repo.createQueryBuilder('t');
    if (!includeRevoked) qb.andWhere('t.revoked_at IS NULL');
    if (after) qb.andWhere('(t.created_at, t.id) > (:at, :id)', { at: after.createdAt, id: after.id });
    return qb.orderBy('t.created_at', 'ASC').addOrderBy('t.id', 'ASC').limit(limit).getMany();
  }

  count(): Promise<number> {
    return this.repo.count();
  }

  async markRevoked(id: string, by: string): Promise<boolean> {
    const res = await this.repo.update({ id, revokedAt: IsNull() }, { revokedAt: () => 'now()', revokedBy: by } as never);
    return (res.affected ?? 0) > 0;
  }

  async touch(id: string): Promise<void> {
    await this.repo.update({ id }, { lastUsedAt: () => 'now()' } as never);
  }
}
