import { SetMetadata } from '@nestjs/common';
import type { Role } from '../../common/roles';

export const ROLES_KEY = 'racksmith:roles';
export const PUBLIC_KEY = 'racksmith:public';
export const CUSTOMER_KEY = 'racksmith:customer';

/** Roles allowed to call a handler. A handler without @Roles or @Public is admin-only. */
export const Roles = (...roles: Role[]) => SetMetadata(ROLES_KEY, roles);
/** No token needed (health, metrics, signed webhooks that check their own signature). */
export const Public = () => SetMetadata(PUBLIC_KEY, true);
/** A customer route (/api/v1/my): only a customer's own token, and everything it reaches is that customer's. */
export const CustomerRoute = () => SetMetadata(CUSTOMER_KEY, true);
