import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Principal, RateLimiter, TokenVerifier } from '@caas/api-auth';
import { AuthenticationError } from '@caas/api-auth';
import { checkBatch } from '@caas/graphql-limits';
import { AuthExceptionCode } from '../errors/common.exception';
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
    let principal: Principal | null;
    try {
      principal = await deps.verifier.verify(request.headers.authorization);
    } catch (error) {
      if (!(error instanceof AuthenticationError)) throw error;
      reply.header('www-authenticate', 'Bearer');
      const reason =
        error.failure === 'TENANT_SUSPENDED' ? AuthExceptionCode.TENANT_SUSPENDED : AuthExceptionCode.INVALID_TOKEN;
      return refuse(reply, ErrorCode.UNAUTHENTICATED, reason, error.message);
    }
    if (principal !== null) {
      const decision = await deps.limiter.hit(principal.kind === 'operator' ? 'operator' : principal.tokenId);
      if (!decision.allowed) {
        reply.header('retry-after', String(Math.ceil(decision.retryAfterMs / 1000)));
        return refuse(
          reply,
          ErrorCode.RATE_LIMITED,
          AuthExceptionCode.RATE_LIMITED,
          'Too many requests for this token; retry later.',
        );
      }
    }
    request.principal = principal;
    return undefined;
  });

  fastify.addHook('preValidation', async (request, reply) => {
    const error = checkBatch(request.body, 0);
    if (error !== null) {
      return refuse(
        reply,
        ErrorCode.BAD_USER_INPUT,
        'BATCH_TOO_LARGE',
        'Batched operations are not accepted: send one operation per request.',
      );
    }
    return undefined;
  });
}
