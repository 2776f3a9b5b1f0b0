import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../generated/client';

export interface DbOptions {
  /** PostgreSQL connection string. */
  url: string;
  /** Connections in this process's pool. */
  poolSize?: number;
}

/**
 * The one way the applications get a Prisma client: the query compiler with the `pg` driver adapter,
 * so nothing native is downloaded or loaded at run time.
 */
export function createPrismaClient({ url, poolSize = 10 }: DbOptions): PrismaClient {
  const adapter = new PrismaPg({ connectionString: url, max: poolSize });
  return new PrismaClient({ adapter });
}

/** PostgreSQL error codes the applications map to user-facing errors. */
export const PgErrorCode = {
  uniqueViolation: 'P2002',
  recordNotFound: 'P2025',
} as const;
