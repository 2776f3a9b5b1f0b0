import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../generated/client';

export interface DbOptions {
  /** PostgreSQL connection string. */
  url: string;
  /** Connections in this process's pool. */
  poolSize?: number;
}

export interface Db {
  prisma: PrismaClient;
  /**
   * The pool Prisma itself uses, for the few hot-path reads where Prisma's per-call query compilation
   * (≈1.5 ms of CPU per `findUnique` with the query compiler, measured here) would dominate a request.
   */
  pool: pg.Pool;
}

/**
 * The one way the applications reach PostgreSQL: Prisma with the query compiler and the `pg` driver
 * adapter (nothing native is downloaded or loaded at run time), over one pool. `prisma.$disconnect()`
 * closes the pool too.
 */
export function createDb({ url, poolSize = 10 }: DbOptions): Db {
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) });
  return { prisma, pool };
}

export function createPrismaClient(options: DbOptions): PrismaClient {
  return createDb(options).prisma;
}
