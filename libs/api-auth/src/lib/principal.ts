import type { Role } from '@caas/db';

/** Roles in increasing order of power. */
export const ROLE_ORDER: readonly Role[] = ['VIEWER', 'MEMBER', 'ADMIN', 'OWNER'];

export function roleAtLeast(role: Role, minimum: Role): boolean {
  return ROLE_ORDER.indexOf(role) >= ROLE_ORDER.indexOf(minimum);
}

export interface OperatorPrincipal {
  kind: 'operator';
}

export interface TenantPrincipal {
  kind: 'tenant';
  tenantId: string;
  tokenId: string;
  role: Role;
  memberId: string | null;
}

/** Who is calling: the platform operator, or a tenant token with its role. */
export type Principal = OperatorPrincipal | TenantPrincipal;

export type AuthFailure = 'MALFORMED' | 'UNKNOWN' | 'REVOKED' | 'EXPIRED' | 'TENANT_SUSPENDED';

export class AuthenticationError extends Error {
  constructor(readonly failure: AuthFailure) {
    super(failure === 'TENANT_SUSPENDED' ? 'The tenant is suspended.' : 'Invalid, expired or revoked token.');
    this.name = 'AuthenticationError';
  }
}
