import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Principal, RateLimiter, TokenVerifier } from '@caas/api-auth';
import { authenticate } from '@caas/api-auth';
import { checkBatch } from '@caas/graphql-limits';
import { AuthExceptionCode, InputExceptionCode } from '../errors/common.exception';
import { ErrorCode, httpStatusOf } from '../errors/error-code';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
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
 * access guard then refuses everything not declared public.
 */
export function registerRequestAuthentication(
  fastify: FastifyInstance,
  deps: { verifier: TokenVerifier; limiter: RateLimiter },
): void {
  fastify.decorateRequest('principal', null);

  fastify.addHook('onRequest', async (request, reply) => {
    const outcome = await authenticate(deps.verifier, deps.limiter, request.headers.authorization);
    if (outcome.ok) {
      request.principal = outcome.principal;
      return undefined;
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
