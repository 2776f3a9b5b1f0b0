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
  /** PostgreSQL connections per process (placement holds at most one per job under way). */
  DB_POOL_SIZE: int(1, 200, 12),
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
  /** How long a process reuses its view of the nodes for placement (a lost race or an unschedulable pod re-reads). */
  PLACEMENT_NODE_CACHE_MS: int(0, 60_000, 1_000),
  /** How long an unschedulable pod's job waits before it is tried again. */
  PLACEMENT_RETRY_DELAY_MS: int(50, 3_600_000, 5_000),
  /**
   * The platform's secrets key (32 bytes, base64; the API's `SECRETS_KEY`): secret env values and registry
   * passwords are opened for the one node whose desired set needs them.
   */
  SECRETS_KEY: z.string().refine((k) => Buffer.from(k, 'base64').length === 32, 'must be 32 bytes, base64-encoded'),
  /** A node without a heartbeat for this long is NOT_READY: its pods are re-placed and its epoch bumped. */
  NODE_LEASE_GRACE_MS: int(500, 600_000, 10_000),
  /** How often the node monitor looks for expired leases. */
  NODE_MONITOR_INTERVAL_MS: int(50, 60_000, 1_000),
  /** Status ingest: entries read per XREADGROUP, and how long one blocks waiting. */
  INGEST_BATCH_SIZE: int(1, 10_000, 200),
  INGEST_BLOCK_MS: int(10, 60_000, 1_000),
  /** How often ingest re-reads the list of nodes (new nodes' streams join within this). */
  INGEST_NODE_REFRESH_MS: int(100, 600_000, 2_000),
  /** An entry another ingest consumer has held unacknowledged this long is claimed (that consumer died). */
  INGEST_CLAIM_IDLE_MS: int(1_000, 3_600_000, 30_000),
  /** Re-placement backoff after a VM or node loss: base · 2^(losses-1), at most max. */
  REPLACE_BACKOFF_BASE_MS: int(0, 3_600_000, 1_000),
  REPLACE_BACKOFF_MAX_MS: int(0, 86_400_000, 300_000),
  /** How often node Redis users are re-applied from PostgreSQL (a Redis restart refuses nodes at most this long). */
  NODE_ACL_SYNC_INTERVAL_MS: int(100, 3_600_000, 5_000),
  /** The reconcile loop's period. */
  RECONCILE_INTERVAL_MS: int(100, 3_600_000, 10_000),
});

export type SchedulerConfig = z.infer<typeof schema>;

export const loadSchedulerConfig = (env: Record<string, string | undefined> = process.env): SchedulerConfig =>
  parseEnv('scheduler', schema, env);
