export { repoRoot, tsRegisterPath } from './lib/repo-root';
export { createTestDatabase, createEmptyDatabase } from './lib/test-database';
export type { TestDatabase, TestDatabaseOptions } from './lib/test-database';
export { testDatabaseAdminUrl } from './lib/postgres-admin';
export { migrationsHash, templateDatabaseName } from './lib/template-database';
export { runPrismaCli, prismaMigrateDeploy } from './lib/prisma-cli';
export type { PrismaCliOptions, PrismaCliResult } from './lib/prisma-cli';
export { testRedisUrl, uniqueRedisPrefix, flushRedisPrefix } from './lib/redis';
