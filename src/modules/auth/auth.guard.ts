import { type CanActivate, type ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { ForbiddenError, UnauthenticatedError } from '../../common/errors';
import { requestContext } from '../../common/request-context';
import type { Role } from '../../common/roles';
import { PUBLIC_KEY, ROLES_KEY } from './auth.decorators';
import { TokenService } from './token.service';

/** Global guard: a Bearer token for everything not marked @Public, and a role the handler allows. */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly tokens: TokenService,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_KEY, targets)) return true;

    const req = context.switchToHttp().getRequest<FastifyRequest>();
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) throw new UnauthenticatedError();
    const actor = await this.tokens.authenticate(match[1]);
    if (!actor) throw new UnauthenticatedError('the API token is unknown, revoked or expired');

    const ctx = requestContext.get();
    if (ctx) ctx.actor = actor;

    const allowed = this.reflector.getAllAndOverride<Role[]>(ROLES_KEY, targets) ?? ['admin'];
    if (!allowed.includes(actor.role)) {
      throw new ForbiddenError(`role ${actor.role} may not do this; allowed: ${allowed.join(', ')}`);
    }
    return true;
  }
}
