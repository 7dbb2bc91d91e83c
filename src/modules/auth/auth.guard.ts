import { type CanActivate, type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { ForbiddenError, UnauthenticatedError } from '../../common/errors';
import { requestContext } from '../../common/request-context';
import type { Role } from '../../common/roles';
import { CUSTOMER_KEY, PUBLIC_KEY, ROLES_KEY } from './auth.decorators';
import { TokenService } from './token.service';
import { CUSTOMER_AUTH, type CustomerAuth } from './customer-auth';

/**
 * Global guard: a Bearer token for everything not marked @Public. A staff token needs a role the
 * handler allows; a customer's token (rsc_…) reaches only handlers marked @CustomerRoute, and
 * those no staff token reaches (staff act on customers' things through the staff routes).
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly tokens: TokenService,
    @Inject(CUSTOMER_AUTH) private readonly customers: CustomerAuth,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_KEY, targets)) return true;

    const req = context.switchToHttp().getRequest<FastifyRequest>();
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) throw new UnauthenticatedError();
    const customerRoute = this.reflector.getAllAndOverride<boolean>(CUSTOMER_KEY, targets) ?? false;
    const actor = this.customers.isCustomerToken(match[1]) ? await this.customers.authenticate(match[1]) : await this.tokens.authenticate(match[1]);
    if (!actor) throw new UnauthenticatedError('the API token is unknown, revoked or expired');

    const ctx = requestContext.get();
    if (ctx) ctx.actor = actor;

    if (actor.kind === 'customer') {
      if (!customerRoute) throw new ForbiddenError('a customer token reaches only the customer routes under /api/v1/my');
      await this.customers.admit(actor);
      return true;
    }
    if (customerRoute) throw new ForbiddenError('this is a customer route: call it with a customer token (staff use the staff routes)');
    const allowed = this.reflector.getAllAndOverride<Role[]>(ROLES_KEY, targets) ?? ['admin'];
    if (!allowed.includes(actor.role as Role)) {
      throw new ForbiddenError(`role ${actor.role} may not do this; allowed: ${allowed.join(', ')}`);
    }
    return true;
  }
}
