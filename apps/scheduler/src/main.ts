import { Redis } from 'ioredis';
import pino from 'pino';
import { ConfigError } from '@caas/config';
import { createDb } from '@caas/db';
import { loadSchedulerConfig } from './config/scheduler-config';

/**
 * The scheduler process. So far it validates its configuration and checks that PostgreSQL and Redis
 * answer; the outbox relay, placement, node monitor and reconcile loops arrive with their issue.
 */
async function main(): Promise<void> {
  const config = loadSchedulerConfig();
  const log = pino({ level: config.LOG_LEVEL, base: { app: 'scheduler' } });
  const db = createDb({
    url: config.DATABASE_URL,
    poolSize: 2,
    onIdleError: (error) => log.warn({ err: error }, 'idle PostgreSQL connection failed'),
  });
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 2 });
  await db.prisma.$queryRaw`SELECT 1`;
  await redis.ping();
  log.info('scheduler connected to PostgreSQL and Redis; no scheduling loops are implemented yet');
  const stop = async (signal: string) => {
    log.info({ signal }, 'scheduler stopping');
    await Promise.allSettled([db.close(), redis.quit()]);
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof ConfigError ? error.message : `scheduler failed: ${String(error)}`}\n`);
  process.exit(error instanceof ConfigError ? 78 : 1);
});
