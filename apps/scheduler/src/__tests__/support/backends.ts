// The real PostgreSQL (a database of its own per test file, migrated) and Redis every scheduler integration
// test runs against, opened before the file's tests and closed after them.
import { Redis } from 'ioredis';
import { createDb, type Db } from '@caas/db';
import { createTestDatabase, testRedisUrl, type TestDatabase } from '@caas/testing';

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
