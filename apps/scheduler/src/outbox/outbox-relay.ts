import type { Queue } from 'bullmq';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Job, OutboxRow, QueueName } from '@caas/queue-contracts';
import { jobFromOutboxRow, jobOptionsFor, queueFor } from '@caas/queue-contracts';
import { InterruptibleSleep } from '../common/interruptible-sleep';

/**
 * Claims the oldest unsent rows no other relay holds. Dead-lettered rows (unsent, attempts > 0) are skipped:
 * see `MARK_DEAD_SQL`. The `(sentAt, id)` index serves the `sentAt IS NULL … ORDER BY id` scan.
 */
const CLAIM_SQL = `
  SELECT id, "aggregateType", "aggregateId", "tenantId", generation, kind, payload
  FROM outbox
  WHERE "sentAt" IS NULL AND attempts = 0
  ORDER BY id
  LIMIT $1
  FOR UPDATE SKIP LOCKED`;

const MARK_SENT_SQL = `UPDATE outbox SET "sentAt" = now(), attempts = attempts + 1 WHERE id = ANY($1::bigint[])`;

/**
 * A row the contract refuses (unknown kind, wrong aggregate, payload failing its schema) is dead-lettered:
 * `attempts` goes up while `sentAt` stays NULL, which takes it out of `CLAIM_SQL` for good. Relaying it again
 * once the scheduler knows the kind: `UPDATE outbox SET attempts = 0 WHERE "sentAt" IS NULL AND attempts > 0`.
 */
const MARK_DEAD_SQL = `UPDATE outbox SET attempts = attempts + 1 WHERE id = ANY($1::bigint[])`;

/** The control-plane queues, one per `QueueName`: adding a queue to the contract fails to compile until wired. */
export type ControlPlaneQueues = Record<QueueName, Queue>;

export interface OutboxRelayHooks {
  /** Runs after the batch's jobs are in Redis and before its rows are marked (tests inject a crash here). */
  afterEnqueue?: (outboxIds: readonly string[]) => Promise<void> | void;
}

export interface OutboxRelayOptions {
  pool: pg.Pool;
  queues: ControlPlaneQueues;
  log: Logger;
  batchSize: number;
  pollIntervalMs: number;
  enqueueTimeoutMs: number;
  hooks?: OutboxRelayHooks;
}

export interface DeadLetter {
  outboxId: string;
  kind: string;
  error: string;
}

export interface RelayBatchResult {
  claimed: number;
  /** Outbox ids enqueued and marked sent, in id order. */
  enqueued: string[];
  deadLettered: DeadLetter[];
}

/** Longest pause after consecutive failures (the pause doubles from the poll interval). */
const MAX_FAILURE_BACKOFF_MS = 10_000;

/**
 * The transactional outbox relay. Each batch, in one PostgreSQL transaction: claim up to `batchSize` unsent
 * rows in id order (`FOR UPDATE SKIP LOCKED`, so concurrent relays take disjoint rows), add each as a BullMQ
 * job with its deterministic job id, then mark the rows sent and commit. Failure anywhere before the commit
 * rolls the marks back and the rows are claimed again: their jobs are re-added under the same ids, which
 * BullMQ ignores while the job still exists. Delivery is therefore at least once; consumers are idempotent on
 * (aggregate id, generation).
 */
export class OutboxRelay {
  private loop: Promise<void> | undefined;
  private stopping = false;
  private readonly pause = new InterruptibleSleep();

  constructor(private readonly options: OutboxRelayOptions) {}

  /** Starts the polling loop (idempotent). */
  start(): void {
    this.loop ??= this.run();
  }

  /** Lets the batch under way commit (or roll back), then ends the loop. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.pause.wake();
    await this.loop;
  }

  /** One claim → enqueue → mark transaction. */
  async relayBatch(): Promise<RelayBatchResult> {
    const { pool, batchSize, hooks } = this.options;
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      try {
        const { rows } = await client.query<OutboxRow>(CLAIM_SQL, [batchSize]);
        const jobs: { outboxId: string; job: Job }[] = [];
        const deadLettered: DeadLetter[] = [];
        for (const row of rows) {
          const result = jobFromOutboxRow(row);
          if (result.ok) jobs.push({ outboxId: row.id, job: result.job });
          else deadLettered.push({ outboxId: row.id, kind: row.kind, error: result.error });
        }
        const enqueued = jobs.map((entry) => entry.outboxId);
        if (jobs.length > 0) {
          await this.enqueue(jobs.map((entry) => entry.job));
          await hooks?.afterEnqueue?.(enqueued);
          await client.query(MARK_SENT_SQL, [enqueued]);
        }
        if (deadLettered.length > 0) {
          await client.query(MARK_DEAD_SQL, [deadLettered.map((dead) => dead.outboxId)]);
        }
        await client.query('COMMIT');
        for (const dead of deadLettered) {
          this.options.log.error(dead, 'outbox row dead-lettered: the queue contract refuses it (not relayed again)');
        }
        return { claimed: rows.length, enqueued, deadLettered };
      } catch (error) {
        await client.query('ROLLBACK').catch((rollbackError: unknown) => {
          broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
        });
        throw error;
      }
    } finally {
      client.release(broken);
    }
  }

  private async enqueue(jobs: readonly Job[]): Promise<void> {
    const byQueue = new Map<QueueName, Job[]>();
    for (const job of jobs) {
      const queue = queueFor(job.name);
      byQueue.set(queue, [...(byQueue.get(queue) ?? []), job]);
    }
    const adds = [...byQueue].map(([queue, queued]) =>
      this.options.queues[queue].addBulk(
        queued.map((job) => ({ name: job.name, data: job.data, opts: jobOptionsFor(job) })),
      ),
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`enqueue took longer than ${this.options.enqueueTimeoutMs} ms`)),
        this.options.enqueueTimeoutMs,
      );
    });
    try {
      // An add that completes after the timeout is harmless: the rows stay unsent and are re-added under
      // the same job ids. (Promise.race subscribes to every add, so a late rejection is not unhandled.)
      await Promise.race([Promise.all(adds), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async run(): Promise<void> {
    const { log, batchSize, pollIntervalMs } = this.options;
    let failures = 0;
    while (!this.stopping) {
      let full = false;
      try {
        const result = await this.relayBatch();
        failures = 0;
        full = result.claimed === batchSize;
        if (result.claimed > 0) {
          log.debug({ enqueued: result.enqueued.length, deadLettered: result.deadLettered.length }, 'outbox batch');
        }
      } catch (error) {
        failures += 1;
        log.error({ err: error, failures }, 'outbox batch failed; its rows stay unsent and are retried');
      }
      if (full && !this.stopping) continue;
      const pause = failures === 0 ? pollIntervalMs : Math.min(pollIntervalMs * 2 ** failures, MAX_FAILURE_BACKOFF_MS);
      await this.sleep(pause);
    }
  }

  private sleep(ms: number): Promise<void> {
    return this.stopping ? Promise.resolve() : this.pause.sleep(ms);
  }
}
