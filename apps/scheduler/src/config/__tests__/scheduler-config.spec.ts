import { ConfigError } from '@caas/config';
import { loadSchedulerConfig } from '../scheduler-config';

const required = {
  DATABASE_URL: 'postgresql://db/x',
  REDIS_URL: 'redis://r:6379/0',
  SECRETS_KEY: Buffer.alloc(32, 7).toString('base64'),
};

describe('scheduler configuration', () => {
  it('accepts the required URLs and defaults everything else', () => {
    expect(loadSchedulerConfig(required)).toEqual({
      ...required,
      LOG_LEVEL: 'info',
      QUEUE_PREFIX: 'bull',
      REDIS_EVICTION_POLICY_CHECK: 'fatal',
      DB_POOL_SIZE: 12,
      OUTBOX_POLL_INTERVAL_MS: 200,
      OUTBOX_BATCH_SIZE: 100,
      OUTBOX_ENQUEUE_TIMEOUT_MS: 5000,
      PLACEMENT_CONCURRENCY: 8,
      VM_OVERHEAD_MIB: 256,
      PLACEMENT_TOP_K: 3,
      PLACEMENT_RETRY_DELAY_MS: 5000,
      PLACEMENT_NODE_CACHE_MS: 1_000,
      NODE_LEASE_GRACE_MS: 10_000,
      NODE_MONITOR_INTERVAL_MS: 1_000,
      INGEST_BATCH_SIZE: 200,
      INGEST_BLOCK_MS: 1_000,
      INGEST_NODE_REFRESH_MS: 2_000,
      INGEST_CLAIM_IDLE_MS: 30_000,
      REPLACE_BACKOFF_BASE_MS: 1_000,
      REPLACE_BACKOFF_MAX_MS: 300_000,
      NODE_ACL_SYNC_INTERVAL_MS: 5_000,
      RECONCILE_INTERVAL_MS: 10_000,
    });
  });

  it('reads the relay settings', () => {
    expect(
      loadSchedulerConfig({
        ...required,
        OUTBOX_POLL_INTERVAL_MS: '50',
        OUTBOX_BATCH_SIZE: '500',
        REDIS_EVICTION_POLICY_CHECK: 'warn',
        QUEUE_PREFIX: 'caas:cp',
      }),
    ).toEqual(
      expect.objectContaining({
        OUTBOX_POLL_INTERVAL_MS: 50,
        OUTBOX_BATCH_SIZE: 500,
        REDIS_EVICTION_POLICY_CHECK: 'warn',
        QUEUE_PREFIX: 'caas:cp',
      }),
    );
  });

  it('names every missing or malformed variable', () => {
    expect(() => loadSchedulerConfig({ REDIS_URL: 'http://nope' })).toThrow(ConfigError);
    expect(() => loadSchedulerConfig({ REDIS_URL: 'http://nope' })).toThrow(/DATABASE_URL[\s\S]*REDIS_URL/);
    expect(() =>
      loadSchedulerConfig({
        ...required,
        OUTBOX_BATCH_SIZE: '0',
        REDIS_EVICTION_POLICY_CHECK: 'maybe',
        QUEUE_PREFIX: 'a*',
      }),
    ).toThrow(/QUEUE_PREFIX[\s\S]*REDIS_EVICTION_POLICY_CHECK[\s\S]*OUTBOX_BATCH_SIZE/);
  });
});
