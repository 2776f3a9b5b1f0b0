import type { OnApplicationShutdown } from '@nestjs/common';
import { Global, Inject, Logger, Module } from '@nestjs/common';
import { Redis } from 'ioredis';
import { RateLimiter, TokenVerifier } from '@caas/api-auth';
import type { Db } from '@caas/db';
import { createDb } from '@caas/db';
import { SecretBox } from '@caas/security';
import type { ApiConfig } from '../../config/api-config';
import { API_CONFIG } from '../../config/api-config';
import { PodEventBus } from '../events/pod-event-bus';
import { DB, PRISMA, REDIS } from './tokens';

/** Process-wide clients (PostgreSQL, Redis) and the services built directly on them. */
@Global()
@Module({
  providers: [
    {
      provide: DB,
      inject: [API_CONFIG],
      useFactory: (config: ApiConfig) => {
        const logger = new Logger('Db');
        return createDb({
          url: config.DATABASE_URL,
          poolSize: config.DB_POOL_SIZE,
          onIdleError: (error) => logger.warn(`idle PostgreSQL connection failed: ${error.message}`),
        });
      },
    },
    { provide: PRISMA, inject: [DB], useFactory: (db: Db) => db.prisma },
    {
      provide: REDIS,
      inject: [API_CONFIG],
      useFactory: (config: ApiConfig) => new Redis(config.REDIS_URL, { maxRetriesPerRequest: 2, lazyConnect: false }),
    },
    {
      provide: TokenVerifier,
      inject: [DB, API_CONFIG],
      useFactory: (db: Db, config: ApiConfig) => {
        const logger = new Logger(TokenVerifier.name);
        return new TokenVerifier(db.pool, {
          operatorTokenHash: config.operatorTokenHash,
          onBackgroundError: (error) => logger.warn(`lastUsedAt update failed: ${String(error)}`),
        });
      },
    },
    {
      provide: RateLimiter,
      inject: [REDIS, API_CONFIG],
      useFactory: (redis: Redis, config: ApiConfig) =>
        new RateLimiter(redis, {
          limit: config.RATE_LIMIT_REQUESTS,
          windowMs: config.RATE_LIMIT_WINDOW_MS,
          prefix: 'caas:rl:',
        }),
    },
    {
      provide: SecretBox,
      inject: [API_CONFIG],
      useFactory: (config: ApiConfig) => new SecretBox(config.secretsKey),
    },
    PodEventBus,
  ],
  exports: [DB, PRISMA, REDIS, TokenVerifier, RateLimiter, SecretBox, PodEventBus],
})
export class InfraModule implements OnApplicationShutdown {
  constructor(
    @Inject(DB) private readonly db: Db,
    @Inject(REDIS) private readonly redis: Redis,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled([this.db.close(), this.redis.quit()]);
  }
}
