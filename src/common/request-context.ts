import { AsyncLocalStorage } from 'node:async_hooks';
import type { Role } from './roles';

/** Who is acting: an API token, the bootstrap token, the CLI, or racksmith itself. */
export interface Actor {
  kind: 'token' | 'bootstrap' | 'cli' | 'system';
  /** Token id for kind=token; otherwise absent. */
  id?: string;
  /** Human-readable: token name, "bootstrap", "cli:<user>", "system". */
  name: string;
  role: Role;
}

export interface RequestContext {
  requestId?: string;
  actor?: Actor;
  source: 'api' | 'cli' | 'system';
}

const storage = new AsyncLocalStorage<RequestContext>();

export const requestContext = {
  run<T>(ctx: RequestContext, fn: () => T): T {
    return storage.run(ctx, fn);
  },
  get(): RequestContext | undefined {
    return storage.getStore();
  },
  requestId(): string | undefined {
    return storage.getStore()?.requestId;
  },
  /** The acting token, bootstrap or CLI user by name; "system" outside a request or command. */
  actorName(): string {
    return storage.getStore()?.actor?.name ?? 'system';
  },
};
