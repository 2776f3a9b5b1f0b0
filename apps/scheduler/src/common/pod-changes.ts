import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { PodEventMessage } from '@caas/log-stream-contract';
import { podEventChannel } from '@caas/log-stream-contract';

/**
 * Helpers the scheduler loops share (node monitor, drain, suspension, status ingest, reconcile): pod events (row +
 * pub/sub message), quota release (the API's `releaseQuota`, replicated: apps cannot import each other), one
 * transaction on a client, and a periodic loop.
 */

export type Queryable = Pick<pg.PoolClient, 'query'>;

export interface PodEventInput {
  tenantId: string;
  /** The pod the event is about. `linkPod: false` writes the row without the link (the pod row is being removed). */
  podId: string;
  nodeId: string | null;
  type: 'NORMAL' | 'WARNING';
  reason: string;
  message: string;
  linkPod?: boolean;
}

/** Appends an `events` row; returns the message to publish on the pod's channel once the transaction commits. */
export async function insertPodEvent(client: Queryable, event: PodEventInput): Promise<PodEventMessage> {
  const { rows } = await client.query<{ id: string; createdAt: Date }>(
    `INSERT INTO events ("tenantId", "podId", "nodeId", type, reason, message)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id::text AS id, "createdAt"`,
    [
      event.tenantId,
      event.linkPod === false ? null : event.podId,
      event.nodeId,
      event.type,
      event.reason,
      event.message.slice(0, 2000),
    ],
  );
  return {
    id: rows[0].id,
    tenantId: event.tenantId,
    podId: event.podId,
    type: event.type,
    reason: event.reason,
    message: event.message.slice(0, 2000),
    createdAt: rows[0].createdAt.toISOString(),
  };
}

/** Publishes committed pod events (as the API's PodEventBus does); a failure is logged, the rows stay. */
export async function publishPodEvents(redis: Redis, events: readonly PodEventMessage[], log: Logger): Promise<void> {
  await Promise.all(
    events.map((event) =>
      redis
        .publish(podEventChannel(event.podId), JSON.stringify(event))
        .catch((error: unknown) => log.warn({ err: error, podId: event.podId }, 'publishing a pod event failed')),
    ),
  );
}

/**
 * Gives back the quota a removed pod held (the API's `releaseQuota`). Conditional so usage never goes below zero;
 * if it would, it is clamped and reported, and reconcile repairs the rest.
 */
export async function releaseQuota(
  client: Queryable,
  tenantId: string,
  size: { vcpus: number; memoryMiB: number },
  log: Logger,
): Promise<void> {
  const released = await client.query(
    `UPDATE tenants SET "usedPods" = "usedPods" - 1, "usedVcpus" = "usedVcpus" - $2,
            "usedMemoryMiB" = "usedMemoryMiB" - $3, "updatedAt" = now()
     WHERE id = $1 AND "usedPods" >= 1 AND "usedVcpus" >= $2 AND "usedMemoryMiB" >= $3`,
    [tenantId, size.vcpus, size.memoryMiB],
  );
  if (released.rowCount === 1) return;
  log.error({ tenantId, ...size }, "tenant usage below the removed pod's size; clamped at zero (reconcile repairs)");
  await client.query(
    `UPDATE tenants SET "usedPods" = GREATEST("usedPods" - 1, 0), "usedVcpus" = GREATEST("usedVcpus" - $2, 0),
            "usedMemoryMiB" = GREATEST("usedMemoryMiB" - $3, 0), "updatedAt" = now()
     WHERE id = $1`,
    [tenantId, size.vcpus, size.memoryMiB],
  );
}

/** Runs `work` in one transaction on its own connection; rolls back on any error. */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/** Rolls back without an error: `inTransaction` callbacks throw this to change nothing and return `value`. */
export class Rollback<T> extends Error {
  constructor(readonly value: T) {
    super('rollback');
  }
}

/** Like `inTransaction`, but a thrown `Rollback` rolls back and returns its value. */
export async function inTransactionOr<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  try {
    return await inTransaction(pool, work);
  } catch (error) {
    if (error instanceof Rollback) return error.value as T;
    throw error;
  }
}

/** A periodic loop: runs `pass` every `intervalMs` (measured from the end of the previous pass) until stopped. */
export class PeriodicLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = true;

  constructor(
    private readonly intervalMs: number,
    private readonly pass: () => Promise<void>,
    private readonly log: Logger,
    private readonly name: string,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops the loop and waits for the pass under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.pass()
        .catch((error: unknown) => this.log.error({ err: error }, `${this.name} pass failed; retried next period`))
        .finally(() => {
          this.running = undefined;
          this.schedule(this.intervalMs);
        });
    }, delayMs);
  }
}
