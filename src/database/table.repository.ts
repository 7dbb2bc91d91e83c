import type { ObjectLiteral, Repository, SelectQueryBuilder } from 'typeorm';
import type { Database } from './database';
import { decodeCursor, encodeCursor, type Page } from '../common/pagination';
import { ValidationError } from '../common/errors';

/**
 * The common part of a table's repository: find, insert, update, delete by id, and keyset
 * pages ordered by a column (then id). Subclasses add the queries their service needs.
 */
export abstract class TableRepository<E extends ObjectLiteral & { id: string }> {
  protected abstract readonly entity: new () => E;

  constructor(protected readonly db: Database) {}

  protected get repo(): Repository<E> {
    return this.db.manager().getRepository(this.entity);
  }

  findById(id: string): Promise<E | null> {
    return this.repo.findOneBy({ id } as never);
  }

  async insert(values: Partial<E>): Promise<E> {
    const { identifiers } = await this.repo.insert(values as never);
    return (await this.findById(identifiers[0].id))!;
  }

  /** Rows matching simple equality conditions (an array of values means IN). */
  findWhere(where: Partial<Record<keyof E, unknown>>): Promise<E[]> {
    const qb = this.repo.createQueryBuilder('t');
    for (const [key, value] of Object.entries(where)) {
      if (value === undefined) continue;
      const col = this.repo.metadata.findColumnWithPropertyName(key)!.databaseName;
      if (Array.isArray(value)) {
        if (!value.length) return Promise.resolve([]);
        qb.andWhere(`t.${col} IN (:...${key})`, { [key]: value });
      } else qb.andWhere(`t.${col} = :${key}`, { [key]: value });
    }
    return qb.getMany();
  }

  /** Insert many rows in batches; returns their ids in input order. */
  async insertMany(rows: Partial<E>[], batch = 500): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < rows.length; i += batch) {
      const { identifiers } = await this.repo.insert(rows.slice(i, i + batch) as never);
      ids.push(...identifiers.map((x) => x.id as string));
    }
    return ids;
  }

  /** Update the given columns (and updated_at when the table has it); null when the row is gone. */
  async update(id: string, values: Partial<E>): Promise<E | null> {
    const touched = this.repo.metadata.findColumnWithPropertyName('updatedAt') ? { ...values, updatedAt: () => 'now()' } : values;
    if (Object.keys(touched).length) await this.repo.update({ id } as never, touched as never);
    return this.findById(id);
  }

  async delete(id: string): Promise<boolean> {
    const res = await this.repo.delete({ id } as never);
    return (res.affected ?? 0) > 0;
  }

  /** Lock the row for the rest of the transaction. */
  async lock(id: string): Promise<E | null> {
    return this.repo.createQueryBuilder('t').setLock('pessimistic_write').where('t.id = :id', { id }).getOne();
  }

  query(alias = 't'): SelectQueryBuilder<E> {
    return this.repo.createQueryBuilder(alias);
  }

  /**
   * One page of `qb` ordered by `column` (a property of E) then id. The cursor carries both,
   * so pages stay stable while rows are added.
   */
  async page(qb: SelectQueryBuilder<E>, column: keyof E & string, limit: number, cursor?: string): Promise<Page<E>> {
    const alias = qb.alias;
    const dbColumn = this.repo.metadata.findColumnWithPropertyName(column)!.databaseName;
    const after = decodeCursor(cursor);
    if (after !== undefined) {
      const sep = after.lastIndexOf('\u0000');
      if (sep < 0) throw new ValidationError('cursor is not one this API handed out', 'cursor');
      qb.andWhere(`(${alias}.${dbColumn}, ${alias}.id) > (:afterKey, :afterId)`, { afterKey: after.slice(0, sep), afterId: after.slice(sep + 1) });
    }
    const rows = await qb.orderBy(`${alias}.${dbColumn}`, 'ASC').addOrderBy(`${alias}.id`, 'ASC').limit(limit + 1).getMany();
    const more = rows.length > limit;
    const items = more ? rows.slice(0, limit) : rows;
    const last = items[items.length - 1];
    return { items, nextCursor: more ? encodeCursor(`${String(last[column])}\u0000${last.id}`) : null };
  }
}
