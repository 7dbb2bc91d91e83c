import { Injectable } from '@nestjs/common';
import { ConflictError, NotFoundError, ValidationError } from '../../common/errors';
import { SecretBox } from '../../common/secret-box';
import { Database } from '../../database/database';
import { AuditService } from '../audit/audit.service';
import { CREDENTIAL_ENV_PREFIX } from '../../config/config';
import { BmcCredentialsRepository } from './bmc-credentials.repository';

export const CREDENTIAL_NAME = /^[a-z0-9][a-z0-9.-]{0,62}$/;
export { CREDENTIAL_ENV_PREFIX };

export interface BmcCredentialView {
  name: string;
  usedBy: number;
  createdAt: string;
  updatedAt: string;
}

/** The credential name an environment variable sets (`RACKSMITH_CREDENTIAL_BMC_DEFAULT` → `bmc-default`), or null. */
export function credentialNameOfEnv(variable: string): string | null {
  if (!variable.startsWith(CREDENTIAL_ENV_PREFIX)) return null;
  const name = variable.slice(CREDENTIAL_ENV_PREFIX.length).toLowerCase().replace(/_/g, '-');
  return CREDENTIAL_NAME.test(name) ? name : null;
}

/**
 * Named BMC credentials: the inventory file names one (`bmc.passwordRef`) instead of holding a
 * password; the secret is sealed like a BMC password, set with `racksmith secrets set NAME`,
 * `PUT /api/v1/bmc-credentials/{name}` or `RACKSMITH_CREDENTIAL_<NAME>`. Changing it changes the
 * password of every BMC that names it. Secrets are never shown.
 */
@Injectable()
export class BmcCredentialsService {
  constructor(
    private readonly repo: BmcCredentialsRepository,
    private readonly secrets: SecretBox,
    private readonly audit: AuditService,
    private readonly db: Database,
  ) {}

  async list(): Promise<BmcCredentialView[]> {
    return (await this.repo.list()).map((c) => ({ name: c.name, usedBy: c.used_by, createdAt: c.created_at.toISOString(), updatedAt: c.updated_at.toISOString() }));
  }

  async set(name: string, secret: string): Promise<{ created: boolean }> {
    if (!CREDENTIAL_NAME.test(name)) throw new ValidationError('a credential name is 1-63 lowercase letters, digits, dots and dashes', 'name');
    if (!secret.length || secret.length > 128) throw new ValidationError('a BMC secret has 1 to 128 characters', 'secret');
    if (/[\r\n]/.test(secret)) throw new ValidationError('a BMC secret holds no line break', 'secret');
    return this.db.transaction(async () => {
      const created = await this.repo.put(name, this.secrets.seal(secret));
      await this.audit.record({ action: created ? 'bmc-credential.create' : 'bmc-credential.update', targetType: 'bmc-credential', targetId: name, changes: { usedBy: await this.repo.usedBy(name) } });
      return { created };
    });
  }

  /** Sets what the environment names (an unchanged secret is left alone); returns the names set. */
  async loadFromEnv(env: NodeJS.ProcessEnv): Promise<string[]> {
    const set: string[] = [];
    for (const [variable, value] of Object.entries(env)) {
      const name = credentialNameOfEnv(variable);
      if (!name || value === undefined || value === '') continue;
      const current = await this.repo.get(name);
      if (current && this.secrets.open(current.secret_enc) === value) continue;
      await this.set(name, value);
      set.push(name);
    }
    return set;
  }

  async remove(name: string): Promise<void> {
    await this.db.transaction(async () => {
      const users = await this.repo.usedBy(name);
      if (users) throw new ConflictError('credential_in_use', `${users} BMC(s) name credential ${name}: give them another first`, { usedBy: users });
      if (!(await this.repo.remove(name))) throw new NotFoundError('BMC credential', name);
      await this.audit.record({ action: 'bmc-credential.delete', targetType: 'bmc-credential', targetId: name });
    });
  }

  names(): Promise<Set<string>> {
    return this.repo.names();
  }
}
