import { testPublisher, useBackends } from '../../__tests__/support/backends';
import { Redis } from 'ioredis';
import pino from 'pino';
import type { PodEventMessage } from '@caas/log-stream-contract';
import { parsePodEventMessage, podEventChannel } from '@caas/log-stream-contract';
import { JobName, jobFromOutboxRow, nodeKeys } from '@caas/queue-contracts';
import type { OutboxRow } from '@caas/queue-contracts';
import { flushRedisPrefix, testRedisUrl, uniqueRedisPrefix } from '@caas/testing';
import type { DesiredSetPublisher } from '../../nodes/desired-set-publisher';
import { NodeMonitor } from '../node-monitor';
import { seedNode, seedPod, seedTenant } from './seed';

jest.setTimeout(60_000);

const BASE_MS = 1_000;
const MAX_MS = 300_000;
const log = pino({ level: 'silent' });
const backends = useBackends('node-monitor', 12);
let prefix: string;
let publishers: DesiredSetPublisher[];

beforeEach(async () => {
  await backends.db.pool.query('TRUNCATE events, outbox, pods, nodes, tenants CASCADE');
  prefix = uniqueRedisPrefix('node-monitor');
  publishers = [];
});

afterEach(async () => {
  await Promise.all(publishers.map((p) => p.close()));
  await flushRedisPrefix(testRedisUrl(), prefix);
});

function monitor(liveness?: { graceMs: number }): NodeMonitor {
  const publisher = testPublisher(backends, prefix);
  publishers.push(publisher);
  return new NodeMonitor({
    pool: backends.db.pool,
    redis: backends.redis,
    publisher,
    log,
    intervalMs: 50,
    backoffBaseMs: BASE_MS,
    backoffMaxMs: MAX_MS,
    ...(liveness && { liveness: { prefix, graceMs: liveness.graceMs } }),
  });
}

const q = async <T>(sql: string, params: unknown[] = []): Promise<T[]> =>
  (await backends.db.pool.query(sql, params)).rows as T[];

const podRow = async (id: string) =>
  (await q<Record<string, unknown>>(`SELECT * FROM pods WHERE id = $1`, [id]))[0] as
    Record<string, unknown> | undefined;

const nodeRow = async (id: string) =>
  (
    await q<Record<string, unknown>>(
      `SELECT status, epoch, "allocatedVcpus", "allocatedMemoryMiB", "allocatedPods",
              "desiredVersion"::text AS "desiredVersion" FROM nodes WHERE id = $1`,
      [id],
    )
  )[0];

describe('node monitor', () => {
  it('declares an expired READY node lost and applies transitions 11, 14 and 18 to its pods', async () => {
    const tenantId = await seedTenant(backends.db.pool);
    const lost = await seedNode(backends.db.pool, { leaseInMs: -500, epoch: 3, desiredVersion: 5 });
    const fresh = await seedNode(backends.db.pool, { leaseInMs: 60_000 });
    const registered = await seedNode(backends.db.pool, { status: 'REGISTERED', leaseInMs: -60_000 });
    const always = await seedPod(backends.db.pool, { tenantId, nodeId: lost, restartPolicy: 'ALWAYS', placement: 2 });
    const onFailure = await seedPod(backends.db.pool, {
      tenantId,
      nodeId: lost,
      restartPolicy: 'ON_FAILURE',
      lostCount: 2,
      placement: 4,
    });
    const never = await seedPod(backends.db.pool, { tenantId, nodeId: lost, restartPolicy: 'NEVER' });
    const stopping = await seedPod(backends.db.pool, {
      tenantId,
      nodeId: lost,
      desiredState: 'STOPPED',
      generation: 2,
    });
    const deleting = await seedPod(backends.db.pool, {
      tenantId,
      nodeId: lost,
      phase: 'DELETING',
      desiredState: 'DELETED',
      generation: 3,
      vcpus: 2,
      memoryMiB: 1024,
      ip: '10.0.0.7',
    });
    const elsewhere = await seedPod(backends.db.pool, { tenantId, nodeId: fresh });
    const m = monitor();
    // The agent's current (old) set, so the test sees the new epoch replace it.
    await publishers[0].publishMany([lost]);
    expect(await publishers[0].storedVersion(lost)).toBe('5');

    const subscriber = new Redis(testRedisUrl());
    const received: PodEventMessage[] = [];
    subscriber.on('message', (_channel: string, payload: string) => {
      const message = parsePodEventMessage(payload);
      if (message) received.push(message);
    });
    await subscriber.subscribe(podEventChannel(always), podEventChannel(deleting));
    try {
      const pass = await m.runOnce();
      expect(pass.expired).toBe(1);
      expect(pass.lost).toEqual([
        { nodeId: lost, name: expect.any(String), epoch: 4, replaced: 2, failed: 1, stopped: 1, deleted: 1 },
      ]);

      expect(await nodeRow(lost)).toEqual({
        status: 'NOT_READY',
        epoch: 4,
        allocatedVcpus: 0,
        allocatedMemoryMiB: 0,
        allocatedPods: 0,
        desiredVersion: '6',
      });
      expect(await podRow(always)).toMatchObject({
        phase: 'PENDING',
        nodeId: null,
        nodeEpoch: null,
        reason: 'NodeLost',
        lostCount: 1,
        placeAfter: null,
        placement: 2,
      });
      const backedOff = await podRow(onFailure);
      expect(backedOff).toMatchObject({ phase: 'PENDING', nodeId: null, reason: 'NodeLost', lostCount: 3 });
      // The third loss waits base · 2^2.
      const wait = (backedOff?.['placeAfter'] as Date).getTime() - Date.now();
      expect(wait).toBeGreaterThan(4 * BASE_MS - 1_500);
      expect(wait).toBeLessThanOrEqual(4 * BASE_MS);
      expect(await podRow(never)).toMatchObject({ phase: 'FAILED', nodeId: null, reason: 'NodeLost' });
      expect((await podRow(never))?.['finishedAt']).toBeInstanceOf(Date);
      expect(await podRow(stopping)).toMatchObject({ phase: 'STOPPED', nodeId: null, desiredState: 'STOPPED' });
      expect(await podRow(deleting)).toBeUndefined();
      expect(await q(`SELECT * FROM ip_allocations WHERE "podId" = $1`, [deleting])).toEqual([]);
      expect(await podRow(elsewhere)).toMatchObject({ phase: 'RUNNING', nodeId: fresh });
      expect(await q(`SELECT phase FROM containers WHERE "podId" = $1`, [always])).toEqual([{ phase: 'WAITING' }]);
      expect(await q(`SELECT phase FROM containers WHERE "podId" = $1`, [never])).toEqual([{ phase: 'EXITED' }]);

      // Quota: the deleted pod's share is released, the others keep theirs.
      expect(await q(`SELECT "usedPods", "usedVcpus", "usedMemoryMiB" FROM tenants WHERE id = $1`, [tenantId])).toEqual(
        [{ usedPods: 5, usedVcpus: 5, usedMemoryMiB: 5 * 512 }],
      );

      // Outbox: re-placements (valid jobs, one per loss) and the deletion.
      const outbox = await q<OutboxRow>(
        `SELECT id::text AS id, "aggregateType", "aggregateId", "tenantId", generation, kind, payload FROM outbox
         ORDER BY id`,
      );
      const jobs = outbox.map((row) => jobFromOutboxRow(row));
      expect(jobs.every((j) => j.ok)).toBe(true);
      expect(outbox.map((r) => [r.kind, r.aggregateId, r.generation, r.payload])).toEqual(
        expect.arrayContaining([
          [JobName.PodPlacementRequested, always, 1, { placement: 2, reason: 'NodeLost' }],
          [JobName.PodPlacementRequested, onFailure, 1, { placement: 4, reason: 'NodeLost' }],
          [
            JobName.PodDeleted,
            deleting,
            3,
            expect.objectContaining({ transition: 18, phase: null, desiredState: 'DELETED', releasedIp: '10.0.0.7' }),
          ],
        ]),
      );
      expect(outbox).toHaveLength(3);

      // Events: NodeLost per pod (the deleted pod's is kept, unlinked) and one for the node.
      const events = await q<{ podId: string | null; nodeId: string; type: string; reason: string }>(
        `SELECT "podId", "nodeId", type, reason FROM events ORDER BY id`,
      );
      expect(events).toHaveLength(6);
      for (const e of events) expect(e).toMatchObject({ nodeId: lost, type: 'WARNING', reason: 'NodeLost' });
      expect(events.filter((e) => e.podId === null)).toHaveLength(2);

      // The node's set in Redis is now empty, under the new epoch.
      const set = JSON.parse((await backends.redis.get(nodeKeys(lost, prefix).desiredSet)) ?? 'null') as {
        version: string;
        epoch: number;
        pods: unknown[];
      };
      expect(set).toMatchObject({ version: '6', epoch: 4, pods: [] });

      // Pod events published after the commit.
      const deadline = Date.now() + 5_000;
      while (received.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(received.map((e) => [e.podId, e.reason]).sort()).toEqual(
        [
          [always, 'NodeLost'],
          [deleting, 'NodeLost'],
        ].sort(),
      );
    } finally {
      await subscriber.quit();
    }

    // Untouched: the fresh node and the REGISTERED one (never had pods, never times out).
    expect(await nodeRow(fresh)).toMatchObject({ status: 'READY', epoch: 1, allocatedPods: 1 });
    expect(await nodeRow(registered)).toMatchObject({ status: 'REGISTERED', epoch: 1 });
    // A second pass finds nothing more to do.
    expect(await m.runOnce()).toEqual({ expired: 0, lost: [] });
  });

  it('two monitors racing over 20 expired nodes handle each node exactly once', async () => {
    const tenantId = await seedTenant(backends.db.pool);
    const nodes: string[] = [];
    for (let i = 0; i < 20; i++) {
      const node = await seedNode(backends.db.pool, { leaseInMs: -100, epoch: 1, desiredVersion: 1 });
      nodes.push(node);
      await seedPod(backends.db.pool, { tenantId, nodeId: node });
      await seedPod(backends.db.pool, { tenantId, nodeId: node, restartPolicy: 'NEVER' });
    }
    const [a, b] = [monitor(), monitor()];
    const [passA, passB] = await Promise.all([a.runOnce(), b.runOnce()]);

    const handled = [...passA.lost, ...passB.lost].map((l) => l.nodeId).sort();
    expect(handled).toEqual([...nodes].sort());
    const rows = await q<{ status: string; epoch: number; desiredVersion: string }>(
      `SELECT status, epoch, "desiredVersion"::text AS "desiredVersion" FROM nodes`,
    );
    expect(rows).toHaveLength(20);
    for (const row of rows) expect(row).toEqual({ status: 'NOT_READY', epoch: 2, desiredVersion: '2' });
    expect(await q(`SELECT kind, COUNT(*)::int AS n FROM outbox GROUP BY kind`)).toEqual([
      { kind: JobName.PodPlacementRequested, n: 20 },
    ]);
    expect(await q(`SELECT phase, COUNT(*)::int AS n FROM pods GROUP BY phase ORDER BY phase`)).toEqual([
      { phase: 'PENDING', n: 20 },
      { phase: 'FAILED', n: 20 },
    ]);
    expect(await q(`SELECT COUNT(*)::int AS n FROM events WHERE "podId" IS NULL`)).toEqual([{ n: 20 }]);
    expect(await q(`SELECT COUNT(*)::int AS n FROM events WHERE "podId" IS NOT NULL`)).toEqual([{ n: 40 }]);
  });

  it('leaves a node alone whose lease expired in PostgreSQL while its report stream shows it alive', async () => {
    const tenantId = await seedTenant(backends.db.pool);
    const behind = await seedNode(backends.db.pool, { leaseInMs: -100 });
    const silent = await seedNode(backends.db.pool, { leaseInMs: -100 });
    await seedPod(backends.db.pool, { tenantId, nodeId: behind });
    // An unread heartbeat from `behind` (ingest lagging); `silent` wrote its last entry long ago.
    await backends.redis.xadd(nodeKeys(behind, prefix).status, '*', 'r', '{}');
    await backends.redis.xadd(nodeKeys(silent, prefix).status, '1-1', 'r', '{}');

    const pass = await monitor({ graceMs: 5_000 }).runOnce();
    expect(pass.lost.map((l) => l.nodeId)).toEqual([silent]);
    expect(await nodeRow(behind)).toMatchObject({ status: 'READY', epoch: 1, allocatedPods: 1 });
    // Without the check (or once the stream is quiet too), the lease decides.
    expect((await monitor().runOnce()).lost.map((l) => l.nodeId)).toEqual([behind]);
  });

  it('runs as a loop and leaves a node with a fresh lease alone', async () => {
    const tenantId = await seedTenant(backends.db.pool);
    const fresh = await seedNode(backends.db.pool, { leaseInMs: 60_000 });
    const soon = await seedNode(backends.db.pool, { leaseInMs: 300 });
    await seedPod(backends.db.pool, { tenantId, nodeId: fresh });
    const m = monitor();
    m.start();
    try {
      const deadline = Date.now() + 10_000;
      while ((await nodeRow(soon))?.['status'] !== 'NOT_READY' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await m.stop();
    }
    expect(await nodeRow(soon)).toMatchObject({ status: 'NOT_READY', epoch: 2 });
    expect(await nodeRow(fresh)).toMatchObject({ status: 'READY', epoch: 1, allocatedPods: 1 });
  });
});
