import { Redis } from 'ioredis';
import pino from 'pino';
import { ConfigError } from '@caas/config';
import { createDb } from '@caas/db';
import { JobName, QueueName } from '@caas/queue-contracts';
import { SecretBox } from '@caas/security';
import { loadSchedulerConfig } from './config/scheduler-config';
import { OutboxRelay } from './outbox/outbox-relay';
import { StatusIngest } from './ingest/status-ingest';
import { NodeDrainer } from './monitor/node-drain';
import { NodeMonitor } from './monitor/node-monitor';
import { TenantSuspender } from './monitor/tenant-suspension';
import { DesiredSetPublisher } from './nodes/desired-set-publisher';
import { NodeAclSync } from './nodes/node-acl-sync';
import { Reconciler } from './reconcile/reconciler';
import { PlacementWorker } from './placement/placement-worker';
import { closeControlPlaneQueues, createControlPlaneQueues } from './queues/control-plane-queues';
import { EvictionPolicyError, checkEvictionPolicy } from './queues/redis-eviction-policy';

/**
 * The scheduler process. It runs the outbox relay (outbox rows → jobs on the placement queue) and the placement
 * worker (pods → nodes); the node monitor, status ingest and reconcile loops arrive with their slices of the issue.
 */
async function main(): Promise<void> {
  const config = loadSchedulerConfig();
  const log = pino({ level: config.LOG_LEVEL, base: { app: 'scheduler' } });
  const db = createDb({
    url: config.DATABASE_URL,
    poolSize: config.DB_POOL_SIZE,
    onIdleError: (error) => log.warn({ err: error }, 'idle PostgreSQL connection failed'),
  });
  // One producer connection for the checks and the queues. A bounded retry count makes a Redis outage fail
  // the batch (which rolls back and retries) instead of queueing commands forever.
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 2 });
  redis.on('error', (error) => log.warn({ err: error }, 'Redis connection error'));
  try {
    await db.prisma.$queryRaw`SELECT 1`;
    await redis.ping();
    await checkEvictionPolicy(redis, config.REDIS_EVICTION_POLICY_CHECK, log);
  } catch (error) {
    await Promise.allSettled([db.close(), redis.quit()]);
    throw error;
  }

  const queues = createControlPlaneQueues(redis, config.QUEUE_PREFIX, log);
  const relay = new OutboxRelay({
    pool: db.pool,
    queues,
    log: log.child({ loop: 'outbox-relay' }),
    batchSize: config.OUTBOX_BATCH_SIZE,
    pollIntervalMs: config.OUTBOX_POLL_INTERVAL_MS,
    enqueueTimeoutMs: config.OUTBOX_ENQUEUE_TIMEOUT_MS,
  });
  // BullMQ workers block on Redis and need `maxRetriesPerRequest: null` on their own connection.
  const workerRedis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
  workerRedis.on('error', (error) => log.warn({ err: error }, 'Redis (placement worker) connection error'));
  const publisher = new DesiredSetPublisher({
    pool: db.pool,
    redis,
    prefix: config.QUEUE_PREFIX,
    log: log.child({ loop: 'desired-sets' }),
    secrets: new SecretBox(Buffer.from(config.SECRETS_KEY, 'base64')),
  });
  const drainer = new NodeDrainer({
    pool: db.pool,
    redis,
    publisher,
    log: log.child({ loop: 'drain' }),
    vmOverheadMiB: config.VM_OVERHEAD_MIB,
  });
  const suspender = new TenantSuspender({ pool: db.pool, redis, publisher, log: log.child({ loop: 'suspension' }) });
  const placement = new PlacementWorker({
    pool: db.pool,
    connection: workerRedis,
    prefix: config.QUEUE_PREFIX,
    log: log.child({ loop: 'placement' }),
    concurrency: config.PLACEMENT_CONCURRENCY,
    settings: { vmOverheadMiB: config.VM_OVERHEAD_MIB, topK: config.PLACEMENT_TOP_K },
    retryDelayMs: config.PLACEMENT_RETRY_DELAY_MS,
    nodeCacheMs: config.PLACEMENT_NODE_CACHE_MS,
    publisher,
    handlers: { [JobName.NodeDrained]: drainer.handle, [JobName.TenantSuspended]: suspender.handle },
  });
  // Status ingest blocks on XREADGROUP: a connection of its own.
  const ingestRedis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
  ingestRedis.on('error', (error) => log.warn({ err: error }, 'Redis (status ingest) connection error'));
  const ingest = new StatusIngest({
    pool: db.pool,
    redis: ingestRedis,
    producer: redis,
    prefix: config.QUEUE_PREFIX,
    log: log.child({ loop: 'ingest' }),
    publisher,
    settings: config,
    vmOverheadMiB: config.VM_OVERHEAD_MIB,
  });
  const monitor = new NodeMonitor({
    pool: db.pool,
    redis,
    publisher,
    log: log.child({ loop: 'node-monitor' }),
    intervalMs: config.NODE_MONITOR_INTERVAL_MS,
    backoffBaseMs: config.REPLACE_BACKOFF_BASE_MS,
    backoffMaxMs: config.REPLACE_BACKOFF_MAX_MS,
    liveness: { prefix: config.QUEUE_PREFIX, graceMs: config.NODE_LEASE_GRACE_MS },
  });
  const reconciler = new Reconciler({
    pool: db.pool,
    queues,
    publisher,
    log: log.child({ loop: 'reconcile' }),
    intervalMs: config.RECONCILE_INTERVAL_MS,
    vmOverheadMiB: config.VM_OVERHEAD_MIB,
  });
  const aclSync = new NodeAclSync({
    pool: db.pool,
    redis,
    prefix: config.QUEUE_PREFIX,
    log: log.child({ loop: 'node-acl-sync' }),
    intervalMs: config.NODE_ACL_SYNC_INTERVAL_MS,
  });
  relay.start();
  placement.start();
  ingest.start();
  monitor.start();
  reconciler.start();
  aclSync.start();
  log.info(
    {
      queue: QueueName.Placement,
      prefix: config.QUEUE_PREFIX,
      pollIntervalMs: config.OUTBOX_POLL_INTERVAL_MS,
      batchSize: config.OUTBOX_BATCH_SIZE,
      placementConcurrency: config.PLACEMENT_CONCURRENCY,
    },
    'scheduler running: outbox relay, placement, status ingest, node monitor, reconcile, node ACL sync',
  );

  const stop = async (signal: string) => {
    log.info({ signal }, 'scheduler stopping: finishing the outbox batch and the placements under way');
    await Promise.allSettled([
      relay.stop(),
      placement.close(),
      ingest.stop(),
      monitor.stop(),
      reconciler.stop(),
      aclSync.stop(),
    ]);
    log.info({ ...placement.planner.stats }, 'placement stats');
    await Promise.allSettled([closeControlPlaneQueues(queues), publisher.close()]);
    await Promise.allSettled([db.close(), redis.quit(), workerRedis.quit(), ingestRedis.quit()]);
    log.info('scheduler stopped');
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

main().catch((error: unknown) => {
  const clear = error instanceof ConfigError || error instanceof EvictionPolicyError;
  process.stderr.write(`${clear ? (error as Error).message : `scheduler failed: ${String(error)}`}\n`);
  process.exit(error instanceof ConfigError ? 78 : 1);
});
