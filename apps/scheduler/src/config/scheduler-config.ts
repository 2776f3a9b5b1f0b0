import { z } from 'zod';
import { parseEnv } from '@caas/config';

const int = (min: number, max: number, fallback: number) => z.coerce.number().int().min(min).max(max).default(fallback);

const schema = z.object({
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgresql:// URL'),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must be a redis:// URL'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** BullMQ key prefix of the control-plane queues (`<prefix>:placement:…`). */
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be 1-64 of A-Z a-z 0-9 _ . : -')
    .default('bull'),
  /**
   * BullMQ loses jobs when Redis evicts keys: `fatal` refuses to start unless `maxmemory-policy` is
   * `noeviction`; `warn` logs an error and runs anyway (for a shared development Redis).
   */
  REDIS_EVICTION_POLICY_CHECK: z.enum(['fatal', 'warn']).default('fatal'),
  /** Pause between outbox polls when the last batch was not full (a full batch re-runs at once). */
  OUTBOX_POLL_INTERVAL_MS: int(10, 60_000, 200),
  /** Outbox rows claimed, enqueued and marked per transaction. */
  OUTBOX_BATCH_SIZE: int(1, 1_000, 100),
  /** A batch whose enqueue takes longer is rolled back and retried (the same job ids, so no duplicates). */
  OUTBOX_ENQUEUE_TIMEOUT_MS: int(100, 60_000, 5_000),
  /** Placement jobs one worker runs at once (each holds at most one PostgreSQL connection at a time). */
  PLACEMENT_CONCURRENCY: int(1, 256, 8),
  /** Memory each VM costs its host beyond its RAM, reserved with every pod (`reservationFor`). */
  VM_OVERHEAD_MIB: int(0, 65_536, 256),
  /** Placement picks at random among the best K feasible nodes (1: always the best). */
  PLACEMENT_TOP_K: int(1, 100, 3),
  /** How long an unschedulable pod's job waits before it is tried again. */
  PLACEMENT_RETRY_DELAY_MS: int(50, 3_600_000, 5_000),
});

export type SchedulerConfig = z.infer<typeof schema>;

export const loadSchedulerConfig = (env: Record<string, string | undefined> = process.env): SchedulerConfig =>
  parseEnv('scheduler', schema, env);
