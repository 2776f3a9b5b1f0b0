// The real PostgreSQL (a database of its own per test file, migrated) and Redis every scheduler integration
// test runs against, opened before the file's tests and closed after them.
import { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { createDb, type Db } from '@caas/db';
import { SecretBox } from '@caas/security';
import { createTestDatabase, testRedisUrl, type TestDatabase } from '@caas/testing';
import { DesiredSetPublisher } from '../../nodes/desired-set-publisher';

export interface Backends {
  db: Db;
  redis: Redis;
}

/** Registers beforeAll/afterAll hooks; the returned object is filled in once beforeAll has run. */
export function useBackends(label: string, poolSize: number): Backends {
  const backends = {} as Backends;
  let database: TestDatabase | undefined;
  beforeAll(async () => {
    database = await createTestDatabase({ label });
    backends.db = createDb({ url: database.url, poolSize });
    backends.redis = new Redis(testRedisUrl(), { maxRetriesPerRequest: 2 });
    // The first suite after a new migration builds the migrated template database (~15 s).
  }, 120_000);
  afterAll(async () => {
    await backends.db?.close();
    await backends.redis?.quit();
    await database?.drop();
  });
  return backends;
}

/** A desired-set publisher on the test's database and Redis, under `prefix`, with a throwaway secrets key. */
export function testPublisher(backends: Backends, prefix: string): DesiredSetPublisher {
  return new DesiredSetPublisher({
    pool: backends.db.pool,
    redis: backends.redis,
    prefix,
    log: pino({ level: 'silent' }),
    secrets: new SecretBox(randomBytes(32)),
  });
}
