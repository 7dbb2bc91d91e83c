import type { Actor } from '../../common/request-context';

/** How the guard meets customers' tokens (CustomersModule provides it; auth does not import customers). */
export interface CustomerAuth {
  isCustomerToken(token: string): boolean;
  /** The customer actor behind a live token, or null. */
  authenticate(token: string): Promise<Actor | null>;
  /** Per-request admission of an authenticated customer: disabled customers and the rate limit (throws). */
  admit(actor: Actor): Promise<void>;
}

export const CUSTOMER_AUTH = Symbol('CUSTOMER_AUTH');
