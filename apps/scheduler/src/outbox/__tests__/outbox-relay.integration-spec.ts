import { useBackends } from '../../__tests__/support/backends';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pino from 'pino';
import { JobName, QUEUE_JOB_OPTIONS, QueueName } from '@caas/queue-contracts';
import { flushRedisPrefix, testRedisUrl, uniqueRedisPrefix } from '@caas/testing';
import type { ControlPlaneQueues, OutboxRelayOptions } from '../outbox-relay';
import { OutboxRelay } from '../outbox-relay';

let prefix: string;
let queues: ControlPlaneQueues;
let placement: Queue;
let logLines: Record<string, unknown>[];

const TENANT = randomUUID();

const backends = useBackends('outbox-relay', 8);

beforeEach(async () => {
  await backends.db.pool.query('TRUNCATE outbox RESTART IDENTITY');
  prefix = uniqueRedisPrefix('outbox-relay');
  placement = new Queue(QueueName.Placement, { connection: backends.redis, prefix });
  queues = { [QueueName.Placement]: placement };
  logLines = [];
});

afterEach(async () => {
  await placement.close();
  await flushRedisPrefix(testRedisUrl(), prefix);
});

const relay = (options: Partial<OutboxRelayOptions> = {}) =>
  new OutboxRelay({
    pool: backends.db.pool,
    queues,
    log: pino(
      { level: 'debug' },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          logLines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
          done();
        },
      }),
    ),
    batchSize: 100,
    pollIntervalMs: 20,
    enqueueTimeoutMs: 5_000,
    ...options,
  });

interface OutboxInsert {
  aggregateType?: string;
  aggregateId?: string;
  tenantId?: string | null;
  generation?: number;
  kind?: string;
  payload?: unknown;
}

const POD_CREATED_PAYLOAD = { phase: 'PENDING', desiredState: 'RUNNING', vcpus: 1, memoryMiB: 256, ip: '10.0.0.2' };

/** Inserts outbox rows (a pod.created by default) and returns their ids in order. */
async function insertOutbox(...rows: OutboxInsert[]): Promise<string[]> {
  const ids: string[] = [];
  for (const row of rows) {
    const { rows: inserted } = await backends.db.pool.query<{ id: string }>(
      `INSERT INTO outbox ("aggregateType", "aggregateId", "tenantId", generation, kind, payload)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
      [
        row.aggregateType ?? 'pod',
        row.aggregateId ?? randomUUID(),
        row.tenantId === undefined ? TENANT : row.tenantId,
        row.generation ?? 1,
        row.kind ?? 'pod.created',
        JSON.stringify(row.payload ?? POD_CREATED_PAYLOAD),
      ],
    );
    ids.push(inserted[0].id);
  }
  return ids;
}

/** `count` pod.created rows for distinct pods, in one statement. */
async function insertPodsCreated(count: number): Promise<void> {
  await backends.db.pool.query(
    `INSERT INTO outbox ("aggregateType", "aggregateId", "tenantId", generation, kind, payload)
     SELECT 'pod', gen_random_uuid(), $1, 1, 'pod.created',
            jsonb_build_object('phase', 'PENDING', 'desiredState', 'RUNNING', 'vcpus', 1, 'memoryMiB', 128,
                               'ip', '10.1.' || (g / 250) || '.' || (g % 250 + 1))
     FROM generate_series(1, $2) AS g`,
    [TENANT, count],
  );
}

const outboxRows = async () =>
  (
    await backends.db.pool.query<{ id: string; sentAt: Date | null; attempts: number }>(
      'SELECT id, "sentAt", attempts FROM outbox ORDER BY id',
    )
  ).rows;

const allJobs = () => placement.getJobs(['waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized']);

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('outbox relay', () => {
  it('turns each row into one job with its deterministic id, payload and bounded retention, and marks it sent', async () => {
    const podId = randomUUID();
    const policyId = randomUUID();
    const [created, stopped, policy] = await insertOutbox(
      { aggregateId: podId },
      {
        aggregateId: podId,
        generation: 2,
        kind: 'pod.desired-state-changed',
        payload: {
          transition: 12,
          previousPhase: 'PENDING',
          phase: 'STOPPED',
          desiredState: 'STOPPED',
          nodeId: null,
          nodeEpoch: null,
        },
      },
      {
        aggregateType: 'network-policy',
        aggregateId: policyId,
        kind: 'network-policy.created',
        payload: { name: 'web' },
      },
    );

    const result = await relay().relayBatch();

    expect(result).toEqual({ claimed: 3, enqueued: [created, stopped, policy], deadLettered: [] });
    const rows = await outboxRows();
    expect(rows.map((row) => row.attempts)).toEqual([1, 1, 1]);
    for (const row of rows) expect(row.sentAt).toBeInstanceOf(Date);

    const job = await placement.getJob(`pod_${podId}_1_pod.created`);
    expect(job?.name).toBe(JobName.PodCreated);
    expect(job?.data).toEqual({ ...POD_CREATED_PAYLOAD, outboxId: created, tenantId: TENANT, podId, generation: 1 });
    expect(job?.opts).toEqual(
      expect.objectContaining({
        attempts: QUEUE_JOB_OPTIONS[QueueName.Placement].attempts,
        removeOnComplete: QUEUE_JOB_OPTIONS[QueueName.Placement].removeOnComplete,
        removeOnFail: QUEUE_JOB_OPTIONS[QueueName.Placement].removeOnFail,
      }),
    );
    expect((await placement.getJob(`pod_${podId}_2_pod.desired-state-changed`))?.data).toEqual(
      expect.objectContaining({ outboxId: stopped, podId, generation: 2, desiredState: 'STOPPED', phase: 'STOPPED' }),
    );
    expect((await placement.getJob(`network-policy_${policyId}_1_network-policy.created`))?.data).toEqual({
      outboxId: policy,
      tenantId: TENANT,
      networkPolicyId: policyId,
      generation: 1,
      name: 'web',
    });
    expect(await placement.getJobCounts('waiting')).toEqual({ waiting: 3 });

    // Sent rows are never claimed again.
    expect(await relay().relayBatch()).toEqual({ claimed: 0, enqueued: [], deadLettered: [] });
    expect(await placement.getJobCounts('waiting')).toEqual({ waiting: 3 });
  });

  it('enqueues one job per (aggregate, generation, kind) even when the same announcement is written twice', async () => {
    const podId = randomUUID();
    await insertOutbox({ aggregateId: podId }, { aggregateId: podId });
    const result = await relay().relayBatch();
    expect(result.enqueued).toHaveLength(2);
    expect((await allJobs()).map((job) => job.id)).toEqual([`pod_${podId}_1_pod.created`]);
  });

  it('claims in id order, one batch at a time', async () => {
    await insertPodsCreated(25);
    const ids = (await outboxRows()).map((row) => row.id);
    const relayOf10 = relay({ batchSize: 10 });
    expect((await relayOf10.relayBatch()).enqueued).toEqual(ids.slice(0, 10));
    expect((await relayOf10.relayBatch()).enqueued).toEqual(ids.slice(10, 20));
    expect((await relayOf10.relayBatch()).enqueued).toEqual(ids.slice(20));
  });

  it('with two relays at once, enqueues and marks each of 500 rows exactly once and leaves none unsent', async () => {
    await insertPodsCreated(500);
    const a = relay({ batchSize: 25 });
    const b = relay({ batchSize: 25 });
    const drain = async (r: OutboxRelay) => {
      const enqueued: string[] = [];
      for (;;) {
        const result = await r.relayBatch();
        if (result.claimed === 0) return enqueued;
        enqueued.push(...result.enqueued);
      }
    };

    const [byA, byB] = await Promise.all([drain(a), drain(b)]);

    // Both did real work, on disjoint rows that together are every row.
    expect(byA.length).toBeGreaterThan(0);
    expect(byB.length).toBeGreaterThan(0);
    const all = [...byA, ...byB];
    expect(new Set(all).size).toBe(500);
    expect(all).toHaveLength(500);
    const rows = await outboxRows();
    expect(rows.filter((row) => row.sentAt === null)).toEqual([]);
    expect(rows.every((row) => row.attempts === 1)).toBe(true);
    expect(await placement.getJobCounts('waiting')).toEqual({ waiting: 500 });
  });

  it('after a crash between enqueue and mark, leaves the row unsent and re-adds the same job id, which BullMQ holds once', async () => {
    const podId = randomUUID();
    const [id] = await insertOutbox({ aggregateId: podId });
    const jobId = `pod_${podId}_1_pod.created`;
    const crashing = relay({
      hooks: {
        afterEnqueue: () => {
          throw new Error('crash after enqueue');
        },
      },
    });

    await expect(crashing.relayBatch()).rejects.toThrow('crash after enqueue');

    expect(await outboxRows()).toEqual([{ id, sentAt: null, attempts: 0 }]);
    const first = await placement.getJob(jobId);
    expect(first).toBeDefined();

    expect((await relay().relayBatch()).enqueued).toEqual([id]);

    expect(await outboxRows()).toEqual([{ id, sentAt: expect.any(Date), attempts: 1 }]);
    const jobs = await allJobs();
    expect(jobs.map((job) => job.id)).toEqual([jobId]);
    expect(jobs[0].timestamp).toBe(first?.timestamp); // the original job, not a replacement
  });

  it('re-adds the job if it was already removed (completed jobs are), so consumers must be idempotent on (id, generation)', async () => {
    const podId = randomUUID();
    await insertOutbox({ aggregateId: podId });
    const jobId = `pod_${podId}_1_pod.created`;
    const crashing = relay({
      hooks: {
        afterEnqueue: () => Promise.reject(new Error('crash after enqueue')),
      },
    });
    await expect(crashing.relayBatch()).rejects.toThrow('crash after enqueue');
    await placement.remove(jobId); // as removeOnComplete does once the worker has finished it

    await relay().relayBatch();

    expect((await allJobs()).map((job) => job.id)).toEqual([jobId]); // delivered a second time
  });

  it('rolls the batch back when Redis does not answer in time, and relays it on the next pass', async () => {
    const [id] = await insertOutbox({});
    // A Redis that never answers: nothing listens on port 1, and ioredis keeps the command queued.
    const silent = new Redis('redis://127.0.0.1:1', { maxRetriesPerRequest: null, retryStrategy: () => 50 });
    silent.on('error', () => undefined);
    const unreachable = new Queue(QueueName.Placement, { connection: silent, prefix });
    unreachable.on('error', () => undefined);
    try {
      const stalled = relay({ enqueueTimeoutMs: 100, queues: { [QueueName.Placement]: unreachable } });
      await expect(stalled.relayBatch()).rejects.toThrow(/enqueue took longer than 100 ms/);
    } finally {
      silent.disconnect();
    }
    expect(await outboxRows()).toEqual([{ id, sentAt: null, attempts: 0 }]);
    expect((await relay().relayBatch()).enqueued).toEqual([id]);
    expect(await placement.getJobCounts('waiting')).toEqual({ waiting: 1 });
  });

  it('dead-letters rows the contract refuses (unknown kind, bad payload): counted, logged, never enqueued, never claimed again', async () => {
    const [unknownKind, good, badPayload, wrongAggregate] = await insertOutbox(
      { kind: 'pod.exploded' },
      {},
      { payload: { ...POD_CREATED_PAYLOAD, vcpus: 'two' } },
      { aggregateType: 'node', tenantId: null },
    );

    const result = await relay().relayBatch();

    expect(result.enqueued).toEqual([good]);
    expect(result.deadLettered).toEqual([
      { outboxId: unknownKind, kind: 'pod.exploded', error: 'unknown outbox kind "pod.exploded"' },
      {
        outboxId: badPayload,
        kind: 'pod.created',
        error: expect.stringMatching(/invalid pod\.created payload: vcpus/),
      },
      { outboxId: wrongAggregate, kind: 'pod.created', error: 'pod.created announces a pod, not a "node"' },
    ]);
    expect(await outboxRows()).toEqual([
      { id: unknownKind, sentAt: null, attempts: 1 },
      { id: good, sentAt: expect.any(Date), attempts: 1 },
      { id: badPayload, sentAt: null, attempts: 1 },
      { id: wrongAggregate, sentAt: null, attempts: 1 },
    ]);
    expect(
      logLines.filter((line) => line['level'] === 50).map((line) => [line['outboxId'], line['kind'], line['msg']]),
    ).toEqual(
      [unknownKind, badPayload, wrongAggregate].map((id) => [
        id,
        expect.any(String),
        expect.stringContaining('dead-lettered'),
      ]),
    );
    expect(await relay().relayBatch()).toEqual({ claimed: 0, enqueued: [], deadLettered: [] });
    expect(await placement.getJobCounts('waiting')).toEqual({ waiting: 1 });

    // Once the scheduler knows better, an operator requeues dead letters by resetting their attempts.
    await backends.db.pool.query(`UPDATE outbox SET attempts = 0 WHERE "sentAt" IS NULL AND attempts > 0`);
    expect((await relay().relayBatch()).deadLettered).toHaveLength(3);
  });

  describe('loop', () => {
    it('re-runs at once while batches are full, then polls; stop() ends it during the pause', async () => {
      await insertPodsCreated(95);
      const looping = relay({ batchSize: 10, pollIntervalMs: 60_000 });
      const started = Date.now();
      looping.start();
      await waitFor(async () => (await outboxRows()).every((row) => row.sentAt !== null));
      expect(Date.now() - started).toBeLessThan(10_000);
      await looping.stop(); // wakes the 60 s pause
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(await placement.getJobCounts('waiting')).toEqual({ waiting: 95 });
    });

    it('picks up new rows within the poll interval', async () => {
      const looping = relay({ pollIntervalMs: 20 });
      looping.start();
      try {
        const [id] = await insertOutbox({});
        await waitFor(async () => (await outboxRows()).every((row) => row.sentAt !== null), 5_000);
        expect(await outboxRows()).toEqual([{ id, sentAt: expect.any(Date), attempts: 1 }]);
      } finally {
        await looping.stop();
      }
    });

    it('on stop, lets the batch under way commit before returning', async () => {
      await insertOutbox({}, {});
      let enteredBatch!: () => void;
      const inBatch = new Promise<void>((resolve) => (enteredBatch = resolve));
      const looping = relay({
        hooks: {
          afterEnqueue: async () => {
            enteredBatch();
            await new Promise((resolve) => setTimeout(resolve, 200));
          },
        },
      });
      looping.start();
      await inBatch;
      await looping.stop();
      expect((await outboxRows()).map((row) => [row.attempts, row.sentAt !== null])).toEqual([
        [1, true],
        [1, true],
      ]);
    });

    it('keeps going after a failed batch, backing off', async () => {
      const [id] = await insertOutbox({});
      let failuresLeft = 2;
      const looping = relay({
        pollIntervalMs: 10,
        hooks: {
          afterEnqueue: () => {
            if (failuresLeft-- > 0) throw new Error('transient');
          },
        },
      });
      looping.start();
      try {
        await waitFor(async () => (await outboxRows())[0]?.sentAt !== null, 5_000);
      } finally {
        await looping.stop();
      }
      expect(await outboxRows()).toEqual([{ id, sentAt: expect.any(Date), attempts: 1 }]);
      expect(
        logLines.filter((line) => line['msg'] === 'outbox batch failed; its rows stay unsent and are retried'),
      ).toHaveLength(2);
      expect(await placement.getJobCounts('waiting')).toEqual({ waiting: 1 });
    });
  });
});
