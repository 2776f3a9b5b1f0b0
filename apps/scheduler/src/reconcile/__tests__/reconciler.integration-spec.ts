import { testPublisher, useBackends } from '../../__tests__/support/backends';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import pino from 'pino';
import type { Job } from '@caas/queue-contracts';
import { JobName, QueueName, jobIdFor } from '@caas/queue-contracts';
import { flushRedisPrefix, testRedisUrl, uniqueRedisPrefix } from '@caas/testing';
import { OVERHEAD, seedNode, seedPod, seedTenant } from '../../monitor/__tests__/seed';
import type { DesiredSetPublisher } from '../../nodes/desired-set-publisher';
import type { ControlPlaneQueues } from '../../outbox/outbox-relay';
import { closeControlPlaneQueues, createControlPlaneQueues } from '../../queues/control-plane-queues';
import type { ReconcilerOptions } from '../reconciler';
import { RECONCILE_LOCK_KEY, Reconciler } from '../reconciler';

jest.setTimeout(60_000);

const log = pino({ level: 'silent' });
const backends = useBackends('reconciler', 8);
let prefix: string;
let publisher: DesiredSetPublisher;
let queues: ControlPlaneQueues;

beforeEach(async () => {
  await backends.db.pool.query('TRUNCATE events, outbox, pods, nodes, tenants CASCADE');
  prefix = uniqueRedisPrefix('reconciler');
  publisher = testPublisher(backends, prefix);
  queues = createControlPlaneQueues(backends.redis, prefix, log);
});

afterEach(async () => {
  await publisher.close();
  await closeControlPlaneQueues(queues);
  await flushRedisPrefix(testRedisUrl(), prefix);
});

const reconciler = (options: Partial<ReconcilerOptions> = {}) =>
  new Reconciler({
    pool: backends.db.pool,
    queues,
    publisher,
    log,
    intervalMs: 1_000,
    vmOverheadMiB: OVERHEAD,
    pendingAfterMs: 2_000,
    ...options,
  });

const q = async <T>(sql: string, params: unknown[] = []): Promise<T[]> =>
  (await backends.db.pool.query(sql, params)).rows as T[];

const placementJobId = (podId: string, generation: number, placement: number) =>
  jobIdFor({ name: JobName.PodPlacementRequested, data: { podId, generation, placement } } as Job);

describe('reconciler', () => {
  it('adds a lost placement job for a waiting pod once, and retries it when it failed', async () => {
    const tenantId = await seedTenant(backends.db.pool);
    const suspended = await seedTenant(backends.db.pool, { status: 'SUSPENDED' });
    const waiting = await seedPod(backends.db.pool, { tenantId, generation: 2, placement: 1, updatedAgoMs: 60_000 });
    await seedPod(backends.db.pool, { tenantId, updatedAgoMs: 0 }); // just changed: its job is on its way
    await seedPod(backends.db.pool, { tenantId: suspended, updatedAgoMs: 60_000 });
    const r = reconciler();
    const queue = queues[QueueName.Placement];

    const first = await r.runOnce();
    expect(first.placement).toEqual({ checked: 1, added: 1, retried: 0, replaced: 0 });
    const id = placementJobId(waiting, 2, 1);
    const job = await queue.getJob(id);
    expect(await job?.getState()).toBe('waiting');
    expect(job?.data).toMatchObject({ podId: waiting, tenantId, generation: 2, placement: 1, reason: 'Reconcile' });
    // The job's outbox id is a real row, recorded as sent.
    expect(
      await q(`SELECT kind, "sentAt" IS NOT NULL AS sent FROM outbox WHERE id = $1::bigint`, [job?.data.outboxId]),
    ).toEqual([{ kind: JobName.PodPlacementRequested, sent: true }]);

    // While the job exists, nothing more is added.
    expect((await r.runOnce()).placement).toEqual({ checked: 1, added: 0, retried: 0, replaced: 0 });
    expect(await queue.count()).toBe(1);

    // A job that failed for good is retried.
    const connection = new Redis(testRedisUrl(), { maxRetriesPerRequest: null });
    const worker = new Worker(
      QueueName.Placement,
      () => {
        throw new Error('boom');
      },
      { connection, prefix, autorun: false },
    );
    await queue.remove(id);
    await queue.add(JobName.PodPlacementRequested, job?.data, { jobId: id, attempts: 1 });
    void worker.run();
    const deadline = Date.now() + 10_000;
    while ((await queue.getJobState(id)) !== 'failed' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await worker.close();
    await connection.quit();
    expect(await queue.getJobState(id)).toBe('failed');
    expect((await r.runOnce()).placement).toEqual({ checked: 1, added: 0, retried: 1, replaced: 0 });
    expect(await queue.getJobState(id)).toBe('waiting');
  });

  it('does not add a placement job while the pod.created job of its generation is still live', async () => {
    const tenantId = await seedTenant(backends.db.pool);
    const waiting = await seedPod(backends.db.pool, { tenantId, updatedAgoMs: 60_000 });
    const created: Job = {
      name: JobName.PodCreated,
      data: {
        outboxId: '5',
        tenantId,
        generation: 1,
        podId: waiting,
        phase: 'PENDING',
        desiredState: 'RUNNING',
        vcpus: 1,
        memoryMiB: 512,
        ip: null,
      },
    };
    await queues[QueueName.Placement].add(created.name, created.data, { jobId: jobIdFor(created), delay: 60_000 });
    expect((await reconciler().runOnce()).placement).toEqual({ checked: 1, added: 0, retried: 0, replaced: 0 });
  });

  it('republishes missing or older desired sets, and announces again to a node that does not apply its version', async () => {
    const missing = await seedNode(backends.db.pool, { leaseInMs: 60_000, desiredVersion: 3, appliedVersion: 3 });
    const older = await seedNode(backends.db.pool, { leaseInMs: 60_000, desiredVersion: 2, appliedVersion: 2 });
    await publisher.publishMany([older]);
    await backends.db.pool.query(`UPDATE nodes SET "desiredVersion" = 4, "appliedVersion" = 4 WHERE id = $1`, [older]);
    const lagging = await seedNode(backends.db.pool, { leaseInMs: 60_000, desiredVersion: 6, appliedVersion: 5 });
    await publisher.publishMany([lagging]);

    let now = 1_000_000;
    const r = reconciler({ appliedLagMs: 30_000, now: () => now });
    const first = await r.runOnce();
    expect(first.desiredSets).toEqual({ republished: 2, reannounced: 0 });
    expect(await publisher.storedVersion(missing)).toBe('3');
    expect(await publisher.storedVersion(older)).toBe('4');
    expect((await r.runOnce()).desiredSets).toEqual({ republished: 0, reannounced: 0 });

    now += 31_000;
    expect((await r.runOnce()).desiredSets).toEqual({ republished: 0, reannounced: 1 });
    expect(await publisher.storedVersion(lagging)).toBe('7');
    expect(await q(`SELECT "desiredVersion"::text AS v FROM nodes WHERE id = $1`, [lagging])).toEqual([{ v: '7' }]);
    // Its lag starts over at the new version.
    now += 1_000;
    expect((await r.runOnce()).desiredSets).toEqual({ republished: 0, reannounced: 0 });
  });

  it('repairs capacity and quota drift', async () => {
    const tenantId = await seedTenant(backends.db.pool);
    const node = await seedNode(backends.db.pool, { leaseInMs: 60_000 });
    const empty = await seedNode(backends.db.pool, { leaseInMs: 60_000 });
    await seedPod(backends.db.pool, { tenantId, nodeId: node, vcpus: 2, memoryMiB: 1024 });
    await seedPod(backends.db.pool, { tenantId, nodeId: node, vcpus: 1, memoryMiB: 512 });
    await seedPod(backends.db.pool, { tenantId, phase: 'STOPPED', desiredState: 'STOPPED', vcpus: 4, memoryMiB: 2048 });
    // Drift: a lost release on one node, a leak on the other, and a quota that missed a deletion.
    await backends.db.pool.query(
      `UPDATE nodes SET "allocatedVcpus" = 9, "allocatedMemoryMiB" = 1, "allocatedPods" = 7 WHERE id = $1`,
      [node],
    );
    await backends.db.pool.query(`UPDATE nodes SET "allocatedPods" = 1 WHERE id = $1`, [empty]);
    await backends.db.pool.query(`UPDATE tenants SET "usedPods" = 4, "usedVcpus" = 1 WHERE id = $1`, [tenantId]);

    const pass = await reconciler().runOnce();
    expect(pass).toMatchObject({ skipped: false, capacityRepaired: 2, quotaRepaired: 1 });
    expect(
      await q(
        `SELECT "allocatedVcpus", "allocatedMemoryMiB", "allocatedPods" FROM nodes WHERE id = ANY($1::uuid[])
         ORDER BY "allocatedPods" DESC`,
        [[node, empty]],
      ),
    ).toEqual([
      { allocatedVcpus: 3, allocatedMemoryMiB: 1536 + 2 * OVERHEAD, allocatedPods: 2 },
      { allocatedVcpus: 0, allocatedMemoryMiB: 0, allocatedPods: 0 },
    ]);
    expect(await q(`SELECT "usedPods", "usedVcpus", "usedMemoryMiB" FROM tenants WHERE id = $1`, [tenantId])).toEqual([
      { usedPods: 3, usedVcpus: 7, usedMemoryMiB: 3584 },
    ]);
    expect(await reconciler().runOnce()).toMatchObject({ capacityRepaired: 0, quotaRepaired: 0 });
  });

  it('skips the pass while another replica holds the reconcile lock', async () => {
    const client = await backends.db.pool.connect();
    try {
      const first = reconciler();
      // Hold the lock the way a running pass does, from another session.
      await client.query(`SELECT pg_advisory_lock($1)`, [String(RECONCILE_LOCK_KEY)]);
      expect(await first.runOnce()).toMatchObject({ skipped: true });
      await client.query(`SELECT pg_advisory_unlock($1)`, [String(RECONCILE_LOCK_KEY)]);
      expect(await first.runOnce()).toMatchObject({ skipped: false });
    } finally {
      client.release();
    }
  });
});
