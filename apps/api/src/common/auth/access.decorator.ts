import { SetMetadata } from '@nestjs/common';
import type { Role } from '@caas/db';

/**
 * Who may call an operation. Every resolver method and controller route carries exactly one; the global
 * guard refuses anything without one (default deny).
 */
export type AccessDeclaration =
  { kind: 'public' } | { kind: 'authenticated' } | { kind: 'operator' } | { kind: 'tenant'; minRole: Role };

export const ACCESS_METADATA = 'caas:access';

const declare = (declaration: AccessDeclaration) => SetMetadata(ACCESS_METADATA, declaration);

/** Anyone, without credentials. */
export const Public = () => declare({ kind: 'public' });
/** The operator or any tenant token. */
export const Authenticated = () => declare({ kind: 'authenticated' });
/** The platform operator only; tenant tokens get FORBIDDEN. */
export const OperatorOnly = () => declare({ kind: 'operator' });
/** A tenant token whose role is at least `minRole`; the operator gets FORBIDDEN (it has no tenant). */
export const TenantRole = (minRole: Role) => declare({ kind: 'tenant', minRole });
