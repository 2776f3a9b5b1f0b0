// Status ingests for integration tests: each on its own Redis connection and Redis prefix (fresh per test), with
// short timings; everything stopped and the prefix flushed afterwards.
import { Redis } from 'ioredis';
import pino from 'pino';
import { flushRedisPrefix, testRedisUrl, uniqueRedisPrefix } from '@caas/testing';
import type { Backends } from '../../../__tests__/support/backends';
import { testPublisher } from '../../../__tests__/support/backends';
import type { DesiredSetPublisher } from '../../../nodes/desired-set-publisher';
import type { StatusIngestSettings } from '../../status-ingest';
import { StatusIngest } from '../../status-ingest';

/** Memory the scheduler adds to each pod for its VM (VM_OVERHEAD_MIB). */
export const INGEST_TEST_OVERHEAD_MIB = 256;

export const INGEST_TEST_SETTINGS: StatusIngestSettings = {
  NODE_LEASE_GRACE_MS: 10_000,
  INGEST_BATCH_SIZE: 50,
  INGEST_BLOCK_MS: 50,
  INGEST_NODE_REFRESH_MS: 100,
  INGEST_CLAIM_IDLE_MS: 200,
  REPLACE_BACKOFF_BASE_MS: 1_000,
  REPLACE_BACKOFF_MAX_MS: 300_000,
};

export class IngestHarness {
  prefix = '';
  private connections: Redis[] = [];
  private ingests: StatusIngest[] = [];
  private publishers: DesiredSetPublisher[] = [];

  constructor(
    private readonly backends: Backends,
    private readonly label: string,
  ) {}

  /** A fresh Redis prefix (beforeEach). */
  reset(): void {
    this.prefix = uniqueRedisPrefix(this.label);
  }

  /** Stops every ingest and publisher made since `reset` and flushes the prefix (afterEach). */
  async stop(): Promise<void> {
    await Promise.all(this.ingests.splice(0).map((i) => i.stop()));
    await Promise.all(this.publishers.splice(0).map((p) => p.close()));
    await Promise.all(this.connections.splice(0).map((c) => c.quit()));
    await flushRedisPrefix(testRedisUrl(), this.prefix);
  }

  newIngest(settings: Partial<StatusIngestSettings> = {}): StatusIngest {
    const redis = new Redis(testRedisUrl(), { maxRetriesPerRequest: null });
    this.connections.push(redis);
    const publisher = testPublisher(this.backends, this.prefix);
    this.publishers.push(publisher);
    const ingest = new StatusIngest({
      pool: this.backends.db.pool,
      redis,
      producer: this.backends.redis,
      prefix: this.prefix,
      log: pino({ level: 'silent' }),
      publisher,
      settings: { ...INGEST_TEST_SETTINGS, ...settings },
      vmOverheadMiB: INGEST_TEST_OVERHEAD_MIB,
    });
    this.ingests.push(ingest);
    return ingest;
  }
}
