import { testPublisher, useBackends } from '../../__tests__/support/backends';
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pino from 'pino';
import { fitsOnNode } from '@caas/placement';
import type { Job } from '@caas/queue-contracts';
import { JobName, QueueName, jobOptionsFor } from '@caas/queue-contracts';
import { flushRedisPrefix, testRedisUrl, uniqueRedisPrefix } from '@caas/testing';
import { PlacementWorker } from '../placement-worker';

jest.setTimeout(60_000);

const OVERHEAD = 256;
let prefix: string;
let queue: Queue;
let workers: PlacementWorker[];
let connections: Redis[];
let tenantId: string;

const backends = useBackends('placement-worker', 24);

beforeEach(async () => {
  await backends.db.pool.query('TRUNCATE events, pods, nodes, tenants CASCADE');
  tenantId = randomUUID();
  await backends.db.pool.query(
    `INSERT INTO tenants (id, slug, "displayName", subnet, "maxPods", "updatedAt")
     VALUES ($1, $2, 'T', '10.0.0.0/16', 10000, now())`,
    [tenantId, `t-${tenantId.slice(0, 8)}`],
  );
  prefix = uniqueRedisPrefix('placement-worker');
  queue = new Queue(QueueName.Placement, { connection: backends.redis, prefix });
  workers = [];
  connections = [];
});

afterEach(async () => {
  await Promise.all(workers.map((w) => w.close()));
  await Promise.all(connections.map((c) => c.quit()));
  await queue.close();
  await flushRedisPrefix(testRedisUrl(), prefix);
});

async function startWorkers(count: number, retryDelayMs: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const connection = new Redis(testRedisUrl(), { maxRetriesPerRequest: null });
    connections.push(connection);
    const worker = new PlacementWorker({
      pool: backends.db.pool,
      connection,
      prefix,
      log: pino({ level: 'silent' }),
      concurrency: 8,
      settings: { vmOverheadMiB: OVERHEAD, topK: 3 },
      retryDelayMs,
      publisher: testPublisher(backends, prefix),
    });
    workers.push(worker);
    worker.start();
    await worker.waitUntilReady();
  }
}

interface NodeSeed {
  vcpus: number;
  memoryMiB: number;
  pods: number;
  cordoned?: boolean;
}

async function seedNodes(seeds: NodeSeed[]): Promise<string[]> {
  const ids: string[] = [];
  for (const [i, s] of seeds.entries()) {
    const node = await backends.db.prisma.node.create({
      data: {
        name: `node-${i}`,
        status: 'READY',
        cordoned: s.cordoned ?? false,
        capacityVcpus: s.vcpus,
        capacityMemoryMiB: s.memoryMiB,
        capacityPods: s.pods,
      },
    });
    ids.push(node.id);
  }
  return ids;
}

async function seedPods(sizes: { vcpus: number; memoryMiB: number }[], generation = 1): Promise<string[]> {
  const ids: string[] = [];
  for (const [i, size] of sizes.entries()) {
    const pod = await backends.db.prisma.pod.create({
      data: { tenantId, name: `pod-${i}`, labels: { app: `a${i % 5}` }, generation, ...size },
    });
    ids.push(pod.id);
  }
  return ids;
}

const createdJob = (podId: string, generation: number, size: { vcpus: number; memoryMiB: number }): Job => ({
  name: JobName.PodCreated,
  data: { outboxId: '1', tenantId, generation, podId, phase: 'PENDING', desiredState: 'RUNNING', ip: null, ...size },
});

async function enqueue(jobs: Job[]): Promise<void> {
  await queue.addBulk(jobs.map((job) => ({ name: job.name, data: job.data, opts: jobOptionsFor(job) })));
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Every node: allocated ≤ capacity, and allocated = the sum of its placed pods' reservations. */
async function expectConsistentAllocation(): Promise<void> {
  const { rows } = await backends.db.pool.query<{
    id: string;
    over: boolean;
    av: number;
    am: number;
    ap: number;
    sv: number;
    sm: number;
    sp: number;
  }>(
    `SELECT n.id, (n."allocatedVcpus" > n."capacityVcpus" OR n."allocatedMemoryMiB" > n."capacityMemoryMiB"
                   OR n."allocatedPods" > n."capacityPods") AS over,
            n."allocatedVcpus" AS av, n."allocatedMemoryMiB" AS am, n."allocatedPods" AS ap,
            COALESCE(SUM(p.vcpus), 0)::int AS sv, COALESCE(SUM(p."memoryMiB" + $1), 0)::int AS sm,
            COUNT(p.id)::int AS sp
     FROM nodes n LEFT JOIN pods p ON p."nodeId" = n.id GROUP BY n.id`,
    [OVERHEAD],
  );
  for (const row of rows) {
    expect(row.over).toBe(false);
    expect([row.av, row.am, row.ap]).toEqual([row.sv, row.sm, row.sp]);
  }
}

const pod = (id: string) => backends.db.prisma.pod.findUniqueOrThrow({ where: { id } });
const eventsOf = (podId: string) => backends.db.prisma.event.findMany({ where: { podId }, orderBy: { id: 'asc' } });

describe('placement worker', () => {
  it('places pods on feasible nodes with the right allocation, epoch, version and event', async () => {
    const [cordoned, small, big] = await seedNodes([
      { vcpus: 64, memoryMiB: 65_536, pods: 100, cordoned: true },
      { vcpus: 1, memoryMiB: 1024, pods: 10 },
      { vcpus: 8, memoryMiB: 8192, pods: 10 },
    ]);
    const sizes = [
      { vcpus: 2, memoryMiB: 1024 },
      { vcpus: 2, memoryMiB: 2048 },
    ];
    const ids = await seedPods(sizes);
    await startWorkers(1, 60_000);
    await enqueue(ids.map((id, i) => createdJob(id, 1, sizes[i])));
    await waitFor(async () => (await backends.db.prisma.pod.count({ where: { phase: 'SCHEDULED' } })) === 2);

    for (const id of ids) {
      const p = await pod(id);
      expect(p).toMatchObject({ phase: 'SCHEDULED', nodeId: big, nodeEpoch: 1, generation: 1 });
      expect(p.scheduledAt).not.toBeNull();
      expect((await eventsOf(id)).map((e) => [e.reason, e.nodeId])).toEqual([['Scheduled', big]]);
    }
    const node = await backends.db.prisma.node.findUniqueOrThrow({ where: { id: big } });
    expect(node).toMatchObject({ allocatedVcpus: 4, allocatedMemoryMiB: 3072 + 2 * OVERHEAD, allocatedPods: 2 });
    expect(node.desiredVersion).toBe(2n);
    for (const id of [cordoned, small]) {
      expect(await backends.db.prisma.node.findUniqueOrThrow({ where: { id } })).toMatchObject({ allocatedPods: 0 });
    }
    await expectConsistentAllocation();
  });

  it('3 workers placing 300 pods concurrently onto tight capacity never overcommit a node', async () => {
    // 12 nodes; every dimension binds somewhere. Total room is below the demand, so some pods stay PENDING.
    await seedNodes(
      Array.from({ length: 12 }, (_, i) => ({
        vcpus: 16 + (i % 3) * 4,
        memoryMiB: 8192 + (i % 4) * 2048,
        pods: 14 + (i % 2) * 6,
      })),
    );
    const sizes = Array.from({ length: 300 }, (_, i) => ({ vcpus: 1 + (i % 2), memoryMiB: 256 * (1 + (i % 3)) }));
    const ids = await seedPods(sizes);
    await startWorkers(3, 60_000);
    await enqueue(ids.map((id, i) => createdJob(id, 1, sizes[i])));

    const settled = async () => {
      const { rows } = await backends.db.pool.query<{ n: number }>(
        `SELECT COUNT(*)::int AS n FROM pods p WHERE p.phase = 'SCHEDULED'
           OR (p.phase = 'PENDING' AND EXISTS (SELECT 1 FROM events e WHERE e."podId" = p.id
                                               AND e.reason = 'FailedScheduling'))`,
      );
      return rows[0].n === 300;
    };
    await waitFor(settled, 30_000).catch(async (error: unknown) => {
      const stats = workers.map((w) => w.planner.stats);
      const counts = await queue.getJobCounts();
      throw new Error(`${String(error)}: ${JSON.stringify({ stats, counts })}`);
    });
    await Promise.all(workers.map((w) => w.close()));

    await expectConsistentAllocation();
    const scheduled = await backends.db.prisma.pod.count({ where: { phase: 'SCHEDULED' } });
    const pending = await backends.db.prisma.pod.findMany({ where: { phase: 'PENDING' } });
    expect(scheduled).toBeGreaterThan(120);
    expect(pending.length).toBeGreaterThan(0);
    expect(scheduled + pending.length).toBe(300);
    for (const p of pending) expect(p).toMatchObject({ reason: 'Unschedulable', nodeId: null });
    // Capacity only grew scarcer, so a pod found unschedulable (not merely after lost races) fits nowhere now.
    const nodes = await backends.db.prisma.node.findMany();
    for (const p of pending.filter((x) => !x.message?.includes('lost to concurrent placements'))) {
      const fits = nodes.filter((n) =>
        fitsOnNode(
          p,
          {
            capacity: { vcpus: n.capacityVcpus, memoryMiB: n.capacityMemoryMiB, pods: n.capacityPods },
            allocated: { vcpus: n.allocatedVcpus, memoryMiB: n.allocatedMemoryMiB, pods: n.allocatedPods },
          },
          { vmOverheadMiB: OVERHEAD },
        ),
      );
      expect(fits).toEqual([]);
    }
    // One Scheduled event per placed pod, never two.
    const { rows } = await backends.db.pool.query<{ n: number }>(
      `SELECT COUNT(*)::int AS n FROM events WHERE reason = 'Scheduled' GROUP BY "podId" HAVING COUNT(*) > 1`,
    );
    expect(rows).toEqual([]);
  });

  it('ignores a job of an older generation', async () => {
    const [node] = await seedNodes([{ vcpus: 8, memoryMiB: 8192, pods: 10 }]);
    const [id] = await seedPods([{ vcpus: 1, memoryMiB: 512 }], 2);
    await startWorkers(1, 60_000);
    await enqueue([createdJob(id, 1, { vcpus: 1, memoryMiB: 512 })]);
    await waitFor(async () => workers[0].planner.stats.skipped === 1);

    expect(await pod(id)).toMatchObject({ phase: 'PENDING', nodeId: null, generation: 2, reason: null });
    expect(await eventsOf(id)).toEqual([]);
    expect(await backends.db.prisma.node.findUniqueOrThrow({ where: { id: node } })).toMatchObject({
      allocatedPods: 0,
      desiredVersion: 0n,
    });
  });

  it('keeps a pod that fits nowhere PENDING with one event, and places it once capacity is added', async () => {
    const [node] = await seedNodes([{ vcpus: 2, memoryMiB: 1024, pods: 10 }]);
    const size = { vcpus: 4, memoryMiB: 2048 };
    const [id] = await seedPods([size]);
    await startWorkers(1, 100);
    await enqueue([createdJob(id, 1, size)]);
    await waitFor(async () => workers[0].planner.stats.unschedulable >= 3);

    expect(await pod(id)).toMatchObject({ phase: 'PENDING', nodeId: null, reason: 'Unschedulable' });
    const failed = await eventsOf(id);
    expect(failed.map((e) => [e.reason, e.type])).toEqual([['FailedScheduling', 'WARNING']]);
    expect(failed[0].message).toMatch(/0\/1 nodes are available/);

    await backends.db.prisma.node.update({ where: { id: node }, data: { capacityVcpus: 8, capacityMemoryMiB: 4096 } });
    await waitFor(async () => (await pod(id)).phase === 'SCHEDULED');
    expect(await pod(id)).toMatchObject({ nodeId: node, reason: null });
    expect((await eventsOf(id)).map((e) => e.reason)).toEqual(['FailedScheduling', 'Scheduled']);
    await expectConsistentAllocation();
  });
});
