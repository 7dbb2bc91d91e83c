import { AsyncLocalStorage } from 'node:async_hooks';
import type { Role } from './roles';

/** Who is acting: an API token, the bootstrap token, the CLI, a customer's token, or racksmith itself. */
export interface Actor {
  kind: 'token' | 'bootstrap' | 'cli' | 'system' | 'customer';
  /** Token id for kind=token and kind=customer; otherwise absent. */
  id?: string;
  /** Human-readable: token name, "bootstrap", "cli:<user>", "customer:<id>", "system". */
  name: string;
  /** A staff role, or "customer": a customer's token reaches only the customer routes (/api/v1/my). */
  role: Role | 'customer';
  /** kind=customer: whose token it is. */
  customerId?: string;
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
