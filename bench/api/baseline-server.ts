/**
 * The benchmark's baseline: a bare Fastify 5 server doing the work behind `{ viewer { tenant { name: slug } } }`
 * without NestJS or GraphQL. It uses the API's own building blocks, set up as apps/api sets them up:
 *
 * - the same pino logger and Fastify options as `createApiApp` (request logging off);
 * - an `onRequest` hook calling `authenticate` (TokenVerifier.verify, then RateLimiter.hit) from @caas/api-auth,
 *   the same function apps/api/src/common/auth/request-authentication.ts calls (same clients, options, key prefix);
 * - `createDb` from @caas/db with the same pool size, and the same read as `TenantService.get`
 *   (`tenant.findUnique` by id, the whole row);
 * - for `pods(first: 20)`, the same reads as `PodService.list` (findMany of 21 with the node's name, count);
 * - the same JSON bodies as the GraphQL responses.
 *
 * It answers POST /graphql (the client sends the very same request to both servers, so Fastify parses the
 * same JSON body) and GET /healthz. Configured from the same environment variables as the API.
 */
import type { FastifyReply } from 'fastify';
import Fastify, { LogController } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import type { Principal } from '@caas/api-auth';
import { authenticate, RateLimiter, TokenVerifier } from '@caas/api-auth';
import { createDb } from '@caas/db';
import { hashToken, looksLikeToken } from '@caas/security';
import { PODS_QUERY, TRIVIAL_QUERY } from './queries';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
}

function env(name: string, fallback?: string): string {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') throw new Error(`baseline: ${name} is not set`);
  return value;
}

function intEnv(name: string, fallback: number): number {
  const value = Number(env(name, String(fallback)));
  if (!Number.isInteger(value) || value < 1) throw new Error(`baseline: ${name} must be a positive integer`);
  return value;
}

function refuse(reply: FastifyReply, status: number, code: string, reason: string, message: string): FastifyReply {
  return reply
    .code(status)
    .header('content-type', 'application/json; charset=utf-8')
    .send({ data: null, errors: [{ message, extensions: { code, reason } }] });
}

async function main(): Promise<void> {
  const operatorToken = env('OPERATOR_TOKEN');
  if (!looksLikeToken(operatorToken, 'caas')) throw new Error('baseline: OPERATOR_TOKEN is not a caas_ token');

  const logger = pino({
    level: env('LOG_LEVEL', 'info'),
    base: { app: 'bench-baseline' },
    redact: ['req.headers.authorization', 'headers.authorization'],
  });
  const { prisma, pool, close } = createDb({ url: env('DATABASE_URL'), poolSize: intEnv('DB_POOL_SIZE', 10) });
  const redis = new Redis(env('REDIS_URL'), { maxRetriesPerRequest: 2, lazyConnect: false });
  const verifier = new TokenVerifier(pool, {
    operatorTokenHash: hashToken(operatorToken),
    onBackgroundError: (error) => logger.warn(`lastUsedAt update failed: ${String(error)}`),
  });
  const limiter = new RateLimiter(redis, {
    limit: intEnv('RATE_LIMIT_REQUESTS', 600),
    windowMs: intEnv('RATE_LIMIT_WINDOW_MS', 60_000),
    prefix: 'caas:rl:',
  });

  const app = Fastify({ loggerInstance: logger, logController: new LogController({ disableRequestLogging: true }) });
  app.decorateRequest('principal', null);

  // The same verification and rate limiting as registerRequestAuthentication (apps/api): one shared function.
  app.addHook('onRequest', async (request, reply) => {
    if (request.url === '/healthz') return undefined;
    const outcome = await authenticate(verifier, limiter, request.headers.authorization);
    if (outcome.ok) {
      request.principal = outcome.principal;
      return undefined;
    }
    if (outcome.failure === 'RATE_LIMITED') {
      reply.header('retry-after', String(Math.ceil(outcome.retryAfterMs / 1000)));
      return refuse(reply, 429, 'RATE_LIMITED', outcome.failure, outcome.message);
    }
    reply.header('www-authenticate', 'Bearer');
    return refuse(reply, 401, 'UNAUTHENTICATED', outcome.failure, outcome.message);
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  // The two benchmark queries, by hand: the same reads as TenantService.get and PodService.list, the same JSON.
  app.post('/graphql', async (request, reply) => {
    const principal = request.principal;
    if (principal === null)
      return refuse(reply, 401, 'UNAUTHENTICATED', 'NOT_AUTHENTICATED', 'Authentication required.');
    if (principal.kind === 'operator') return refuse(reply, 200, 'FORBIDDEN', 'TENANT_ONLY', 'Tenant only.');
    const { query } = request.body as { query?: string };
    if (query === TRIVIAL_QUERY) {
      const row = await prisma.tenant.findUnique({ where: { id: principal.tenantId } });
      if (row === null) return refuse(reply, 200, 'NOT_FOUND', 'TENANT_NOT_FOUND', 'Tenant not found.');
      return { data: { viewer: { tenant: { name: row.slug } } } };
    }
    if (query === PODS_QUERY) {
      const where = { tenantId: principal.tenantId, AND: [] };
      const [rows, totalCount] = await Promise.all([
        prisma.pod.findMany({
          where,
          orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
          take: 21,
          include: { node: { select: { name: true } } },
        }),
        prisma.pod.count({ where }),
      ]);
      const edges = rows.slice(0, 20).map((p) => ({ node: { id: p.id, name: p.name, phase: p.phase, ip: p.ip } }));
      return { data: { pods: { totalCount, edges } } };
    }
    return refuse(reply, 400, 'BAD_USER_INPUT', 'UNKNOWN_QUERY', 'The baseline answers the benchmark queries only.');
  });

  const shutdown = async (): Promise<void> => {
    await app.close().catch(() => undefined);
    await Promise.allSettled([close(), redis.quit()]);
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown());
  process.once('SIGINT', () => void shutdown());

  await app.listen({ host: env('HOST', '127.0.0.1'), port: intEnv('PORT', 4100) });
}

main().catch((error: unknown) => {
  process.stderr.write(`baseline failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
