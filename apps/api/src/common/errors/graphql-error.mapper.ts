import { GraphQLError } from 'graphql';
import { Prisma } from '@caas/db';
import { ApiTokenExceptionCode } from '../../api-token/api-token.exception';
import { RegistryCredentialExceptionCode } from '../../registry-credential/registry-credential.exception';
import { TenantExceptionCode } from '../../tenant/tenant.exception';
import { AuthExceptionCode, InputExceptionCode } from './common.exception';
import { ErrorCode, ERROR_CODES } from './error-code';
import { ModuleException } from './module.exception';

type ModuleCode =
  | AuthExceptionCode
  | InputExceptionCode
  | TenantExceptionCode
  | ApiTokenExceptionCode
  | RegistryCredentialExceptionCode;

/** The one place module codes meet the public set. Adding a module code without a case fails to compile. */
export function publicCodeOf(code: ModuleCode): ErrorCode {
  switch (code) {
    case AuthExceptionCode.NOT_AUTHENTICATED:
    case AuthExceptionCode.INVALID_TOKEN:
    case AuthExceptionCode.TENANT_SUSPENDED:
      return ErrorCode.UNAUTHENTICATED;
    case AuthExceptionCode.OPERATOR_ONLY:
    case AuthExceptionCode.TENANT_ONLY:
    case AuthExceptionCode.ROLE_TOO_LOW:
    case AuthExceptionCode.NO_ACCESS_DECLARATION:
    case ApiTokenExceptionCode.ROLE_ABOVE_CALLER:
      return ErrorCode.FORBIDDEN;
    case AuthExceptionCode.RATE_LIMITED:
      return ErrorCode.RATE_LIMITED;
    case InputExceptionCode.INVALID_ID:
    case InputExceptionCode.INVALID_CURSOR:
    case InputExceptionCode.PAGE_SIZE_TOO_LARGE:
    case InputExceptionCode.INVALID_INPUT:
    case InputExceptionCode.BATCH_TOO_LARGE:
    case TenantExceptionCode.INVALID_TENANT_INPUT:
    case ApiTokenExceptionCode.INVALID_API_TOKEN_INPUT:
    case RegistryCredentialExceptionCode.INVALID_REGISTRY_CREDENTIAL_INPUT:
      return ErrorCode.BAD_USER_INPUT;
    case TenantExceptionCode.TENANT_NOT_FOUND:
    case ApiTokenExceptionCode.API_TOKEN_NOT_FOUND:
    case RegistryCredentialExceptionCode.REGISTRY_CREDENTIAL_NOT_FOUND:
      return ErrorCode.NOT_FOUND;
    case TenantExceptionCode.SLUG_TAKEN:
    case TenantExceptionCode.NETWORK_IDS_EXHAUSTED:
    case RegistryCredentialExceptionCode.REGISTRY_CREDENTIAL_EXISTS:
      return ErrorCode.CONFLICT;
  }
}

export interface PublicError {
  message: string;
  code: ErrorCode;
  reason?: string;
  /** Set when the error is ours, not the caller's: it must be logged, never shown. */
  internal?: unknown;
}

/** Classifies anything thrown while serving a request into what the caller may see. */
export function toPublicError(error: unknown): PublicError {
  const original = error instanceof GraphQLError ? (error.originalError ?? undefined) : error;
  if (original instanceof ModuleException) {
    return { message: original.message, code: publicCodeOf(original.code as ModuleCode), reason: original.code };
  }
  if (original instanceof Prisma.PrismaClientKnownRequestError && original.code === 'P2002') {
    return {
      message: 'An object with these values already exists.',
      code: ErrorCode.CONFLICT,
      reason: 'ALREADY_EXISTS',
    };
  }
  if (error instanceof GraphQLError) {
    const code = error.extensions?.code;
    // Our validation rules (abuse limits) set a public code themselves.
    if (typeof code === 'string' && ERROR_CODES.has(code) && (original === undefined || original === error)) {
      const reason = error.extensions.reason;
      return {
        message: error.message,
        code: code as ErrorCode,
        reason: typeof reason === 'string' ? reason : undefined,
      };
    }
    // graphql-js syntax, validation and variable-coercion errors carry no original error: the query was wrong.
    if (original === undefined)
      return { message: error.message, code: ErrorCode.BAD_USER_INPUT, reason: 'INVALID_QUERY' };
  }
  return { message: 'Internal server error.', code: ErrorCode.INTERNAL, internal: original ?? error };
}
