import type { CanActivate, ExecutionContext } from '@nestjs/common';
import { Injectable, Logger } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { roleAtLeast } from '@caas/api-auth';
import { AuthException, AuthExceptionCode } from '../errors/common.exception';
import type { AccessDeclaration } from './access.decorator';
import { ACCESS_METADATA } from './access.decorator';
import { principalOf } from './principal.decorator';

/** The global guard: every operation needs an access declaration, and the caller must satisfy it. */
@Injectable()
export class AccessGuard implements CanActivate {
  private readonly logger = new Logger(AccessGuard.name);

  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    const declaration = this.reflector.get<AccessDeclaration | undefined>(ACCESS_METADATA, context.getHandler());
    if (declaration === undefined) {
      this.logger.error(`${context.getClass().name}.${context.getHandler().name} has no access declaration`);
      throw new AuthException(AuthExceptionCode.NO_ACCESS_DECLARATION, 'This operation is not available.');
    }
    if (declaration.kind === 'public') return true;

    const principal = principalOf(context);
    if (principal === null) {
      throw new AuthException(AuthExceptionCode.NOT_AUTHENTICATED, 'Authentication required: send a bearer token.');
    }
    switch (declaration.kind) {
      case 'authenticated':
        return true;
      case 'operator':
        if (principal.kind !== 'operator') {
          throw new AuthException(AuthExceptionCode.OPERATOR_ONLY, 'Only the platform operator may do this.');
        }
        return true;
      case 'tenant':
        if (principal.kind !== 'tenant') {
          throw new AuthException(AuthExceptionCode.TENANT_ONLY, 'This operation needs a tenant token.');
        }
        if (!roleAtLeast(principal.role, declaration.minRole)) {
          throw new AuthException(
            AuthExceptionCode.ROLE_TOO_LOW,
            `This operation needs the ${declaration.minRole} role or higher.`,
          );
        }
        return true;
    }
  }
}
