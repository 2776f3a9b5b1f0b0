import { z } from 'zod';
import { parseEnv } from '@caas/config';

const schema = z.object({
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgresql:// URL'),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must be a redis:// URL'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type SchedulerConfig = z.infer<typeof schema>;

export const loadSchedulerConfig = (env: Record<string, string | undefined> = process.env): SchedulerConfig =>
  parseEnv('scheduler', schema, env);
