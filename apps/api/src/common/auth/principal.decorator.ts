import type { ExecutionContext } from '@nestjs/common';
import { createParamDecorator } from '@nestjs/common';
import { GqlExecutionContext } from '@nestjs/graphql';
import type { Principal, TenantPrincipal } from '@caas/api-auth';
import { AuthException, AuthExceptionCode } from '../errors/common.exception';

/** The context every GraphQL resolver receives, filled before any resolver runs. */
export interface RequestContext {
  principal: Principal | null;
}

export function principalOf(context: ExecutionContext): Principal | null {
  if (context.getType<string>() === 'graphql') {
    return GqlExecutionContext.create(context).getContext<RequestContext>().principal;
  }
  return context.switchToHttp().getRequest<RequestContext>().principal ?? null;
}

export const CurrentPrincipal = createParamDecorator((_: unknown, context: ExecutionContext): Principal | null =>
  principalOf(context),
);

/** The calling tenant; only on operations declared `@TenantRole(...)`, which the guard has already checked. */
export const CurrentTenant = createParamDecorator((_: unknown, context: ExecutionContext): TenantPrincipal => {
  const principal = principalOf(context);
  if (principal?.kind !== 'tenant') {
    throw new AuthException(AuthExceptionCode.TENANT_ONLY, 'This operation needs a tenant token.');
  }
  return principal;
});
