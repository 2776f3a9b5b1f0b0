import { testPublisher, useBackends } from '../../__tests__/support/backends';
import pino from 'pino';
import { JobName, jobFromOutboxRow, nodeKeys } from '@caas/queue-contracts';
import type { DesiredSet, OutboxRow } from '@caas/queue-contracts';
import { flushRedisPrefix, testRedisUrl, uniqueRedisPrefix } from '@caas/testing';
import type { DesiredSetPublisher } from '../../nodes/desired-set-publisher';
import type { HandlerContext } from '../../placement/placement-worker';
import { NodeDrainer } from '../node-drain';
import { TenantSuspender } from '../tenant-suspension';
import { OVERHEAD, seedNode, seedPod, seedTenant } from './seed';

jest.setTimeout(60_000);

const log = pino({ level: 'silent' });
const backends = useBackends('drain-suspension', 8);
let prefix: string;
let publisher: DesiredSetPublisher;

beforeEach(async () => {
  await backends.db.pool.query('TRUNCATE events, outbox, pods, nodes, tenants CASCADE');
  prefix = uniqueRedisPrefix('drain-suspension');
  publisher = testPublisher(backends, prefix);
});

afterEach(async () => {
  await publisher.close();
  await flushRedisPrefix(testRedisUrl(), prefix);
});

const q = async <T>(sql: string, params: unknown[] = []): Promise<T[]> =>
  (await backends.db.pool.query(sql, params)).rows as T[];

const pod = async (id: string) => (await q<Record<string, unknown>>(`SELECT * FROM pods WHERE id = $1`, [id]))[0];

const storedSet = async (nodeId: string): Promise<DesiredSet | null> =>
  JSON.parse((await backends.redis.get(nodeKeys(nodeId, prefix).desiredSet)) ?? 'null') as DesiredSet | null;

describe('node drain', () => {
  const drainer = () =>
    new NodeDrainer({ pool: backends.db.pool, redis: backends.redis, publisher, log, vmOverheadMiB: OVERHEAD });

  it('moves every pod desired RUNNING off a draining node; NEVER pods fail; idempotent', async () => {
    const tenantId = await seedTenant(backends.db.pool);
    const node = await seedNode(backends.db.pool, { leaseInMs: 60_000, draining: true, desiredVersion: 7 });
    const a = await seedPod(backends.db.pool, { tenantId, nodeId: node, placement: 3 });
    const b = await seedPod(backends.db.pool, { tenantId, nodeId: node, phase: 'STARTING', vcpus: 2 });
    const never = await seedPod(backends.db.pool, { tenantId, nodeId: node, restartPolicy: 'NEVER' });
    const stopping = await seedPod(backends.db.pool, { tenantId, nodeId: node, desiredState: 'STOPPED' });
    const deleting = await seedPod(backends.db.pool, {
      tenantId,
      nodeId: node,
      phase: 'DELETING',
      desiredState: 'DELETED',
    });

    const context: HandlerContext = { retryInMs: null };
    await drainer().handle(
      {
        outboxId: '1',
        tenantId: null,
        generation: 7,
        nodeId: node,
        cordoned: true,
        draining: true,
        epoch: 1,
        desiredVersion: '7',
      },
      context,
    );
    expect(context.retryInMs).toBeNull();

    for (const id of [a, b]) {
      expect(await pod(id)).toMatchObject({ phase: 'PENDING', nodeId: null, nodeEpoch: null, reason: 'Drained' });
    }
    expect(await pod(never)).toMatchObject({ phase: 'FAILED', nodeId: null, reason: 'Drained' });
    // Stopping and deleting pods stay until their node reports them gone.
    expect(await pod(stopping)).toMatchObject({ phase: 'RUNNING', nodeId: node });
    expect(await pod(deleting)).toMatchObject({ phase: 'DELETING', nodeId: node });
    expect(await q(`SELECT id FROM pods WHERE "nodeId" = $1 AND "desiredState" = 'RUNNING'`, [node])).toEqual([]);

    const [row] = await q<Record<string, unknown>>(
      `SELECT "allocatedVcpus", "allocatedMemoryMiB", "allocatedPods", "desiredVersion"::text AS v FROM nodes
       WHERE id = $1`,
      [node],
    );
    expect(row).toEqual({
      allocatedVcpus: 2,
      allocatedMemoryMiB: 2 * (512 + OVERHEAD),
      allocatedPods: 2,
      v: '10',
    });
    const outbox = await q<OutboxRow>(
      `SELECT id::text AS id, "aggregateType", "aggregateId", "tenantId", generation, kind, payload FROM outbox`,
    );
    expect(outbox.every((r) => jobFromOutboxRow(r).ok)).toBe(true);
    expect(outbox.map((r) => [r.kind, r.aggregateId, r.payload]).sort()).toEqual(
      [
        [JobName.PodPlacementRequested, a, { placement: 3, reason: 'Drained' }],
        [JobName.PodPlacementRequested, b, { placement: 1, reason: 'Drained' }],
      ].sort(),
    );
    expect(await q(`SELECT COUNT(*)::int AS n FROM events WHERE reason = 'Drained'`)).toEqual([{ n: 3 }]);
    const set = await storedSet(node);
    expect(set?.version).toBe('10');
    expect(set?.pods.map((p) => p.podId).sort()).toEqual([stopping, deleting].sort());

    // Again: nothing left to move.
    expect(await drainer().drain(node, 7)).toEqual({ outcome: 'drained', moved: 0, failed: 0 });
    expect(await q(`SELECT COUNT(*)::int AS n FROM outbox`)).toEqual([{ n: 2 }]);
  });

  it('leaves a node that is no longer draining alone', async () => {
    const tenantId = await seedTenant(backends.db.pool);
    const node = await seedNode(backends.db.pool, { leaseInMs: 60_000, draining: false });
    const a = await seedPod(backends.db.pool, { tenantId, nodeId: node });
    expect(await drainer().drain(node, 1)).toEqual({ outcome: 'not-draining', moved: 0, failed: 0 });
    expect(await pod(a)).toMatchObject({ phase: 'RUNNING', nodeId: node });
  });
});

describe('tenant suspension', () => {
  const suspender = () => new TenantSuspender({ pool: backends.db.pool, redis: backends.redis, publisher, log });

  it('stops every pod desired RUNNING: PENDING ones at once, placed ones through their node', async () => {
    const tenantId = await seedTenant(backends.db.pool, { status: 'SUSPENDED', generation: 2 });
    const other = await seedTenant(backends.db.pool);
    const node = await seedNode(backends.db.pool, { leaseInMs: 60_000, desiredVersion: 4 });
    const pending = await seedPod(backends.db.pool, { tenantId, generation: 2 });
    const running = await seedPod(backends.db.pool, { tenantId, nodeId: node, generation: 3 });
    const deleting = await seedPod(backends.db.pool, {
      tenantId,
      nodeId: node,
      phase: 'DELETING',
      desiredState: 'DELETED',
    });
    const failed = await seedPod(backends.db.pool, { tenantId, phase: 'FAILED' });
    const otherPod = await seedPod(backends.db.pool, { tenantId: other, nodeId: node });

    await suspender().handle({ outboxId: '1', tenantId, generation: 2, status: 'SUSPENDED' });

    expect(await pod(pending)).toMatchObject({
      phase: 'STOPPED',
      desiredState: 'STOPPED',
      generation: 3,
      reason: 'TenantSuspended',
    });
    expect(await pod(running)).toMatchObject({
      phase: 'RUNNING',
      desiredState: 'STOPPED',
      generation: 4,
      reason: 'TenantSuspended',
      nodeId: node,
    });
    expect(await pod(deleting)).toMatchObject({ phase: 'DELETING', desiredState: 'DELETED', generation: 1 });
    expect(await pod(failed)).toMatchObject({ phase: 'FAILED', desiredState: 'RUNNING', generation: 1 });
    expect(await pod(otherPod)).toMatchObject({ phase: 'RUNNING', desiredState: 'RUNNING', generation: 1 });
    // Quota kept.
    expect(await q(`SELECT "usedPods" FROM tenants WHERE id = $1`, [tenantId])).toEqual([{ usedPods: 4 }]);
    const set = await storedSet(node);
    expect(set?.version).toBe('5');
    expect(set?.pods.find((p) => p.podId === running)).toMatchObject({ desiredState: 'STOPPED', generation: 4 });
    expect(await q(`SELECT COUNT(*)::int AS n FROM events WHERE reason = 'TenantSuspended'`)).toEqual([{ n: 2 }]);

    // Idempotent: a duplicate job (or an older one) finds nothing left to stop.
    expect(await suspender().suspend(tenantId, 2)).toEqual({ outcome: 'stopped', stopped: 0, stopping: 0, nodes: [] });
    expect(await q(`SELECT "desiredVersion"::text AS v FROM nodes WHERE id = $1`, [node])).toEqual([{ v: '5' }]);
  });

  it('does nothing for a tenant that is ACTIVE again', async () => {
    const tenantId = await seedTenant(backends.db.pool, { status: 'ACTIVE', generation: 3 });
    const pending = await seedPod(backends.db.pool, { tenantId });
    expect(await suspender().suspend(tenantId, 2)).toMatchObject({ outcome: 'not-suspended' });
    expect(await pod(pending)).toMatchObject({ phase: 'PENDING', desiredState: 'RUNNING', generation: 1 });
  });
});
