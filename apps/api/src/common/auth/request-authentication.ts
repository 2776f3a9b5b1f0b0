import type { FastifyInstance, FastifyReply } from 'fastify';
import type { AuthOutcome, Principal, RateLimiter, TokenVerifier } from '@caas/api-auth';
import { authenticate } from '@caas/api-auth';
import { checkBatch } from '@caas/graphql-limits';
import { AuthException, AuthExceptionCode, InputExceptionCode } from '../errors/common.exception';
import { ErrorCode, httpStatusOf } from '../errors/error-code';

/** Turns an `Authorization` value into a principal or a refusal: the HTTP hook's check, for other transports. */
export type BearerAuthenticator = (authorization: string | undefined) => Promise<AuthOutcome>;

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyInstance {
    /** The same check as the `onRequest` hook; GraphQL subscriptions use it on `connection_init`. */
    authenticateBearer: BearerAuthenticator;
  }
}

/** The refusal of a failed authentication, as a module exception (for transports without HTTP statuses). */
export function authFailure(outcome: Extract<AuthOutcome, { ok: false }>): AuthException {
  switch (outcome.failure) {
    case 'RATE_LIMITED':
      return new AuthException(AuthExceptionCode.RATE_LIMITED, outcome.message);
    case 'TENANT_SUSPENDED':
      return new AuthException(AuthExceptionCode.TENANT_SUSPENDED, outcome.message);
    case 'MALFORMED':
    case 'UNKNOWN':
    case 'REVOKED':
    case 'EXPIRED':
      return new AuthException(AuthExceptionCode.INVALID_TOKEN, outcome.message);
  }
}

function refuse(reply: FastifyReply, code: ErrorCode, reason: string, message: string): FastifyReply {
  return reply
    .code(httpStatusOf(code))
    .header('content-type', 'application/json; charset=utf-8')
    .send({ data: null, errors: [{ message, extensions: { code, reason } }] });
}

/**
 * Runs before GraphQL sees a request: resolves the bearer token to a principal, applies the per-token
 * rate limit and refuses batched bodies. Requests without credentials go on with no principal; the
 * access guard then refuses everything not declared public. The same check is offered to GraphQL
 * subscriptions (`fastify.authenticateBearer`), which authenticate on `connection_init` instead.
 */
export function registerRequestAuthentication(
  fastify: FastifyInstance,
  deps: { verifier: TokenVerifier; limiter: RateLimiter },
): void {
  fastify.decorateRequest('principal', null);
  fastify.decorate<BearerAuthenticator>('authenticateBearer', (authorization) =>
    authenticate(deps.verifier, deps.limiter, authorization),
  );

  fastify.addHook('onRequest', async (request, reply) => {
    const outcome = await authenticate(deps.verifier, deps.limiter, request.headers.authorization);
    if (outcome.ok) {
      request.principal = outcome.principal;
      return undefined;
    }
    // A refused WebSocket upgrade (GraphQL subscriptions) gets its HTTP answer on a socket no server
    // response owns any longer: close it once the answer is out, or it stays open (and holds shutdown).
    if (request.headers.upgrade !== undefined) {
      const socket = request.raw.socket;
      reply.raw.once('finish', () => socket.destroy());
    }
    if (outcome.failure === 'RATE_LIMITED') {
      reply.header('retry-after', String(Math.ceil(outcome.retryAfterMs / 1000)));
      return refuse(reply, ErrorCode.RATE_LIMITED, AuthExceptionCode.RATE_LIMITED, outcome.message);
    }
    reply.header('www-authenticate', 'Bearer');
    const reason =
      outcome.failure === 'TENANT_SUSPENDED' ? AuthExceptionCode.TENANT_SUSPENDED : AuthExceptionCode.INVALID_TOKEN;
    return refuse(reply, ErrorCode.UNAUTHENTICATED, reason, outcome.message);
  });

  fastify.addHook('preValidation', async (request, reply) => {
    if (checkBatch(request.body, 0) === null) return undefined;
    return refuse(
      reply,
      ErrorCode.BAD_USER_INPUT,
      InputExceptionCode.BATCH_TOO_LARGE,
      'Batched operations are not accepted: send one operation per request.',
    );
  });
}
