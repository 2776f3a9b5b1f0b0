import { GraphQLError } from 'graphql';
import { Prisma } from '@caas/db';
import { ApiTokenExceptionCode } from '../../api-token/api-token.exception';
import { NetworkPolicyExceptionCode } from '../../network-policy/network-policy.exception';
import { NodeExceptionCode } from '../../node/node.exception';
import { PodLogExceptionCode } from '../../pod-log/pod-log.exception';
import { PodExceptionCode } from '../../pod/pod.exception';
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
  | RegistryCredentialExceptionCode
  | PodExceptionCode
  | NetworkPolicyExceptionCode
  | NodeExceptionCode
  | PodLogExceptionCode;

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
    case PodLogExceptionCode.TOO_MANY_LOG_STREAMS:
      return ErrorCode.RATE_LIMITED;
    case InputExceptionCode.INVALID_ID:
    case InputExceptionCode.INVALID_CURSOR:
    case InputExceptionCode.PAGE_SIZE_TOO_LARGE:
    case InputExceptionCode.INVALID_INPUT:
    case InputExceptionCode.BATCH_TOO_LARGE:
    case TenantExceptionCode.INVALID_TENANT_INPUT:
    case ApiTokenExceptionCode.INVALID_API_TOKEN_INPUT:
    case RegistryCredentialExceptionCode.INVALID_REGISTRY_CREDENTIAL_INPUT:
    case PodExceptionCode.INVALID_POD_INPUT:
    case NetworkPolicyExceptionCode.INVALID_NETWORK_POLICY_INPUT:
    case NodeExceptionCode.INVALID_NODE_INPUT:
    case PodLogExceptionCode.INVALID_LOG_QUERY:
      return ErrorCode.BAD_USER_INPUT;
    case TenantExceptionCode.TENANT_NOT_FOUND:
    case ApiTokenExceptionCode.API_TOKEN_NOT_FOUND:
    case RegistryCredentialExceptionCode.REGISTRY_CREDENTIAL_NOT_FOUND:
    case PodExceptionCode.POD_NOT_FOUND:
    case NetworkPolicyExceptionCode.NETWORK_POLICY_NOT_FOUND:
    case NodeExceptionCode.NODE_NOT_FOUND:
    case PodLogExceptionCode.POD_NOT_FOUND:
      return ErrorCode.NOT_FOUND;
    case TenantExceptionCode.SLUG_TAKEN:
    case TenantExceptionCode.NETWORK_IDS_EXHAUSTED:
    case RegistryCredentialExceptionCode.REGISTRY_CREDENTIAL_EXISTS:
    case PodExceptionCode.POD_NAME_TAKEN:
    case PodExceptionCode.INVALID_POD_STATE:
    case PodExceptionCode.SUBNET_EXHAUSTED:
    case NetworkPolicyExceptionCode.NETWORK_POLICY_NAME_TAKEN:
    case NetworkPolicyExceptionCode.NETWORK_POLICY_CHANGED_CONCURRENTLY:
      return ErrorCode.CONFLICT;
    case PodExceptionCode.POD_QUOTA_EXCEEDED:
      return ErrorCode.QUOTA_EXCEEDED;
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
    // graphql-js syntax, validation and variable-coercion errors: no original error, or a GraphQLError the
    // scalar or enum raised while coercing a variable. The query or its variables were wrong.
    if (original === undefined || original instanceof GraphQLError) {
      return { message: error.message, code: ErrorCode.BAD_USER_INPUT, reason: 'INVALID_QUERY' };
    }
  }
  // Fastify and Mercurius refuse malformed requests (a body that is not JSON, no query, a mutation over GET)
  // with their own 4xx errors, whose messages are generic and safe to show.
  if (isRequestError(original)) {
    const message = error instanceof GraphQLError ? error.message : original.message;
    return { message, code: ErrorCode.BAD_USER_INPUT, reason: 'INVALID_REQUEST' };
  }
  return { message: 'Internal server error.', code: ErrorCode.INTERNAL, internal: original ?? error };
}

function isRequestError(error: unknown): error is Error & { code: string; statusCode: number } {
  if (!(error instanceof Error)) return false;
  const { code, statusCode } = error as { code?: unknown; statusCode?: unknown };
  return (
    typeof code === 'string' &&
    /^(FST|MER)_/.test(code) &&
    typeof statusCode === 'number' &&
    statusCode >= 400 &&
    statusCode < 500
  );
}
