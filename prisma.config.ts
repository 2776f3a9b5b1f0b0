import path from 'node:path';
import type { PrismaConfig } from 'prisma';
import { migrationAdapter } from './prisma/src/migration-adapter';

process.env.CHECKPOINT_DISABLE ??= '1';

export default {
  experimental: { adapter: true },
  engine: 'js',
  schema: path.join('prisma', 'schema.prisma'),
  migrations: { path: path.join('prisma', 'migrations') },
  adapter: async () => {
    const url = process.env.DATABASE_URL;
    if (!url) throw new Error('DATABASE_URL is not set');
    return migrationAdapter(url);
  },
} satisfies PrismaConfig;
