import { useBackends } from '../../__tests__/support/backends';
import { INGEST_TEST_OVERHEAD_MIB, INGEST_TEST_SETTINGS, IngestHarness } from './support/ingest-harness';
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { PodEventMessage } from '@caas/log-stream-contract';
import { parsePodEventMessage, podEventChannel } from '@caas/log-stream-contract';
import type { Heartbeat, NodeEvent, PodReport, PodStatus } from '@caas/queue-contracts';
import { STATUS_CONSUMER_GROUP, STATUS_FIELD, jobFromOutboxRow, nodeKeys } from '@caas/queue-contracts';
import { testRedisUrl } from '@caas/testing';
import type { StatusIngestSettings } from '../status-ingest';
import type { StatusIngest } from '../status-ingest';

jest.setTimeout(60_000);

const OVERHEAD = INGEST_TEST_OVERHEAD_MIB;
const LEASE_MS = INGEST_TEST_SETTINGS.NODE_LEASE_GRACE_MS;
const SETTINGS = INGEST_TEST_SETTINGS;

const backends = useBackends('status-ingest', 12);
const harness = new IngestHarness(backends, 'status-ingest');
let prefix: string;
let tenantId: string;

beforeEach(async () => {
  await backends.db.pool.query('TRUNCATE events, outbox, pods, nodes, tenants CASCADE');
  tenantId = randomUUID();
  await backends.db.pool.query(
    `INSERT INTO tenants (id, slug, "displayName", subnet, "updatedAt", "usedPods", "usedVcpus", "usedMemoryMiB")
     VALUES ($1, $2, 'T', '10.0.0.0/16', now(), 0, 0, 0)`,
    [tenantId, `t-${tenantId.slice(0, 8)}`],
  );
  harness.reset();
  prefix = harness.prefix;
});

afterEach(() => harness.stop());

const newIngest = (settings: Partial<StatusIngestSettings> = {}): StatusIngest => harness.newIngest(settings);

/** Reads and processes until the streams are empty (the loop's work, without the loop). */
async function drain(ingest: StatusIngest): Promise<void> {
  while ((await ingest.readOnce()) > 0);
}

interface NodeSeed {
  status?: 'REGISTERED' | 'READY' | 'NOT_READY';
  epoch?: number;
}

async function seedNode(seed: NodeSeed = {}): Promise<string> {
  const node = await backends.db.prisma.node.create({
    data: {
      name: `node-${randomBytes(3).toString('hex')}`,
      status: seed.status ?? 'READY',
      epoch: seed.epoch ?? 1,
      capacityVcpus: 16,
      capacityMemoryMiB: 32_768,
      capacityPods: 20,
    },
  });
  return node.id;
}

interface PodSeed {
  nodeId: string | null;
  phase?: 'PENDING' | 'SCHEDULED' | 'STARTING' | 'RUNNING' | 'DELETING';
  desiredState?: 'RUNNING' | 'STOPPED' | 'DELETED';
  restartPolicy?: 'NEVER' | 'ON_FAILURE' | 'ALWAYS';
  generation?: number;
  nodeEpoch?: number;
  placement?: number;
  lostCount?: number;
  vcpus?: number;
  memoryMiB?: number;
  ip?: string;
}

let podCounter = 0;

/** A pod with one container `app` (image `nginx:1`), charged to the tenant's quota and reserved on its node. */
async function seedPod(seed: PodSeed): Promise<string> {
  const vcpus = seed.vcpus ?? 1;
  const memoryMiB = seed.memoryMiB ?? 512;
  const pod = await backends.db.prisma.pod.create({
    data: {
      tenantId,
      name: `pod-${podCounter++}`,
      vcpus,
      memoryMiB,
      restartPolicy: seed.restartPolicy ?? 'ALWAYS',
      generation: seed.generation ?? 1,
      desiredState: seed.desiredState ?? 'RUNNING',
      phase: seed.phase ?? 'SCHEDULED',
      nodeId: seed.nodeId,
      nodeEpoch: seed.nodeId === null ? null : (seed.nodeEpoch ?? 1),
      placement: seed.placement ?? 1,
      lostCount: seed.lostCount ?? 0,
      ip: seed.ip ?? null,
      containers: { create: [{ ordinal: 0, name: 'app', image: 'nginx:1', command: [], args: [] }] },
    },
  });
  if (seed.ip !== undefined) {
    await backends.db.pool.query(`INSERT INTO ip_allocations ("tenantId", address, "podId") VALUES ($1, $2, $3)`, [
      tenantId,
      seed.ip,
      pod.id,
    ]);
  }
  await backends.db.pool.query(
    `UPDATE tenants SET "usedPods" = "usedPods" + 1, "usedVcpus" = "usedVcpus" + $2,
            "usedMemoryMiB" = "usedMemoryMiB" + $3 WHERE id = $1`,
    [tenantId, vcpus, memoryMiB],
  );
  if (seed.nodeId !== null) {
    await backends.db.pool.query(
      `UPDATE nodes SET "allocatedVcpus" = "allocatedVcpus" + $2, "allocatedMemoryMiB" = "allocatedMemoryMiB" + $3,
              "allocatedPods" = "allocatedPods" + 1 WHERE id = $1`,
      [seed.nodeId, vcpus, memoryMiB + OVERHEAD],
    );
  }
  return pod.id;
}

const pod = (id: string) => backends.db.prisma.pod.findUniqueOrThrow({ where: { id }, include: { containers: true } });
const node = (id: string) => backends.db.prisma.node.findUniqueOrThrow({ where: { id } });
const eventsOf = (podId: string) => backends.db.prisma.event.findMany({ where: { podId }, orderBy: { id: 'asc' } });

function status(podId: string, phase: PodStatus['phase'], extra: Partial<PodStatus> = {}): PodStatus {
  return {
    podId,
    generation: 1,
    placement: 1,
    phase,
    reason: null,
    message: null,
    accelerator: null,
    imageDigests: {},
    containers: [],
    ...extra,
  };
}

const container = (extra: Partial<PodStatus['containers'][number]> = {}): PodStatus['containers'][number] => ({
  name: 'app',
  phase: 'RUNNING',
  exitCode: null,
  signal: null,
  reason: null,
  restartCount: 0,
  startedAt: '2026-12-01T10:00:00.000Z',
  finishedAt: null,
  ...extra,
});

const nodeEvent = (reason: string, message: string, type: NodeEvent['type'] = 'NORMAL'): NodeEvent => ({
  type,
  reason,
  message,
  at: new Date().toISOString(),
});

function podReport(epoch: number, s: PodStatus, events: NodeEvent[] = []): PodReport {
  return { kind: 'pod', epoch, status: s, events };
}

function heartbeat(epoch: number, pods: PodStatus[] = [], extra: Partial<Heartbeat> = {}): Heartbeat {
  return {
    kind: 'heartbeat',
    epoch,
    appliedVersion: '7',
    sentAt: new Date().toISOString(),
    capacity: { vcpus: 16, memoryMiB: 32_768, pods: 20, diskBytes: 100_000_000_000 },
    usage: { vcpus: 2, memoryMiB: 1024, pods: 1, diskUsedBytes: 1000, imageCacheBytes: 500 },
    diskPressure: false,
    accelerator: 'KVM',
    pods,
    ...extra,
  };
}

/** What the agent does: append to its own status stream. */
async function send(nodeId: string, report: unknown): Promise<string> {
  const raw = typeof report === 'string' ? report : JSON.stringify(report);
  const id = await backends.redis.xadd(nodeKeys(nodeId, prefix).status, '*', STATUS_FIELD, raw);
  return id ?? '';
}

async function pendingCount(nodeId: string): Promise<number> {
  const reply = (await backends.redis.xpending(nodeKeys(nodeId, prefix).status, STATUS_CONSUMER_GROUP)) as unknown[];
  return Number(reply[0]);
}

async function subscribe(podId: string): Promise<{ messages: PodEventMessage[]; close: () => Promise<void> }> {
  const subscriber = new Redis(testRedisUrl(), { maxRetriesPerRequest: 2 });
  const messages: PodEventMessage[] = [];
  subscriber.on('message', (_channel: string, payload: string) => {
    const message = parsePodEventMessage(payload);
    if (message !== null) messages.push(message);
  });
  await subscriber.subscribe(podEventChannel(podId));
  return { messages, close: async () => void (await subscriber.quit()) };
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('status ingest: heartbeats', () => {
  it('makes a REGISTERED node READY on its first heartbeat and renews the lease', async () => {
    const nodeId = await seedNode({ status: 'REGISTERED' });
    const ingest = newIngest();
    await ingest.refreshNodes();
    const before = Date.now();
    await send(nodeId, heartbeat(1));
    await drain(ingest);

    const n = await node(nodeId);
    expect(n).toMatchObject({
      status: 'READY',
      accelerator: 'KVM',
      capacityVcpus: 16,
      capacityDiskBytes: 100_000_000_000n,
      appliedVersion: 7n,
      diskPressure: false,
      usage: { vcpus: 2, memoryMiB: 1024, pods: 1, diskUsedBytes: 1000, imageCacheBytes: 500 },
    });
    expect(n.lastHeartbeatAt?.getTime()).toBeGreaterThanOrEqual(before - 1000);
    const lease = (n.leaseExpiresAt?.getTime() ?? 0) - (n.lastHeartbeatAt?.getTime() ?? 0);
    expect(lease).toBe(LEASE_MS);
    const events = await backends.db.prisma.event.findMany({ where: { nodeId } });
    expect(events.map((e) => e.reason)).toEqual(['NodeReady']);

    // A second heartbeat renews the lease; no second NodeReady.
    const firstLease = n.leaseExpiresAt?.getTime() ?? 0;
    await new Promise((resolve) => setTimeout(resolve, 20));
    await send(nodeId, heartbeat(1, [], { diskPressure: true }));
    await drain(ingest);
    const again = await node(nodeId);
    expect(again.leaseExpiresAt?.getTime()).toBeGreaterThan(firstLease);
    expect(again.diskPressure).toBe(true);
    expect(await backends.db.prisma.event.count({ where: { nodeId } })).toBe(1);
    expect(await pendingCount(nodeId)).toBe(0);
  });

  it('a heartbeat of an older epoch renews nothing and re-publishes the set; the new epoch makes it READY', async () => {
    const nodeId = await seedNode({ status: 'NOT_READY', epoch: 2 });
    const ingest = newIngest();
    await ingest.refreshNodes();
    await send(nodeId, heartbeat(1));
    await drain(ingest);

    expect(await node(nodeId)).toMatchObject({ status: 'NOT_READY', leaseExpiresAt: null, lastHeartbeatAt: null });
    expect(ingest.stats.staleHeartbeats).toBe(1);
    const stored = await backends.redis.get(nodeKeys(nodeId, prefix).desiredSet);
    expect(stored).not.toBeNull();
    expect(JSON.parse(stored ?? '{}')).toMatchObject({ nodeId, epoch: 2 });

    await send(nodeId, heartbeat(2));
    await drain(ingest);
    expect(await node(nodeId)).toMatchObject({ status: 'READY' });
    const events = await backends.db.prisma.event.findMany({ where: { nodeId } });
    expect(events.map((e) => [e.reason, e.message])).toEqual([
      ['NodeReady', expect.stringContaining('back under epoch 2')],
    ]);
  });
});

describe('status ingest: pod reports', () => {
  it('moves SCHEDULED → STARTING → RUNNING, records digests and containers, and publishes the events', async () => {
    const nodeId = await seedNode();
    const podId = await seedPod({ nodeId });
    const ingest = newIngest();
    await ingest.refreshNodes();
    const sub = await subscribe(podId);
    const versionBefore = (await node(nodeId)).desiredVersion;

    await send(
      nodeId,
      podReport(1, status(podId, 'STARTING', { imageDigests: { 'nginx:1': 'sha256:aaa', 'evil:1': 'sha256:bbb' } }), [
        nodeEvent('Pulling', 'Pulling image nginx:1'),
        nodeEvent('Pulled', 'Pulled image nginx:1'),
      ]),
    );
    await drain(ingest);
    let p = await pod(podId);
    expect(p).toMatchObject({ phase: 'STARTING', imageDigests: { 'nginx:1': 'sha256:aaa' }, observedGeneration: 1 });
    expect((await node(nodeId)).desiredVersion).toBe(versionBefore + 1n);

    await send(nodeId, podReport(1, status(podId, 'RUNNING', { accelerator: 'KVM', containers: [container()] })));
    await drain(ingest);
    p = await pod(podId);
    expect(p).toMatchObject({ phase: 'RUNNING', accelerator: 'KVM' });
    expect(p.startedAt).not.toBeNull();
    expect(p.containers[0]).toMatchObject({ phase: 'RUNNING', restartCount: 0 });
    expect(p.containers[0]?.startedAt?.toISOString()).toBe('2026-12-01T10:00:00.000Z');

    const rows = await eventsOf(podId);
    expect(rows.map((e) => e.reason)).toEqual(['Pulling', 'Pulled', 'Started']);
    await waitFor(() => sub.messages.length === 3);
    expect(sub.messages.map((m) => [m.id, m.reason, m.podId, m.tenantId])).toEqual(
      rows.map((e) => [e.id.toString(), e.reason, podId, tenantId]),
    );
    await sub.close();
    expect(await pendingCount(nodeId)).toBe(0);
  });

  it("ignores a report written to node B's stream about node A's pod", async () => {
    const a = await seedNode();
    const b = await seedNode();
    const podId = await seedPod({ nodeId: a });
    const ingest = newIngest();
    await ingest.refreshNodes();
    await send(b, podReport(1, status(podId, 'RUNNING'), [nodeEvent('Forged', 'from node B')]));
    await send(b, heartbeat(1, [status(podId, 'FAILED')]));
    await drain(ingest);
    expect(await pod(podId)).toMatchObject({ phase: 'SCHEDULED', nodeId: a });
    expect(await eventsOf(podId)).toEqual([]);
    expect(ingest.stats.dropped).toBe(2);
    expect(await pendingCount(b)).toBe(0);
  });

  it('ignores reports of an older epoch or an older placement', async () => {
    const nodeId = await seedNode({ epoch: 3 });
    const podId = await seedPod({ nodeId, nodeEpoch: 3, placement: 2 });
    const ingest = newIngest();
    await ingest.refreshNodes();
    await send(nodeId, podReport(2, status(podId, 'RUNNING', { placement: 2 })));
    await send(nodeId, podReport(3, status(podId, 'FAILED', { placement: 1 })));
    await drain(ingest);
    expect(await pod(podId)).toMatchObject({ phase: 'SCHEDULED', nodeId });
    expect(ingest.stats.dropped).toBe(2);

    await send(nodeId, podReport(3, status(podId, 'RUNNING', { placement: 2 })));
    await drain(ingest);
    expect(await pod(podId)).toMatchObject({ phase: 'RUNNING' });
  });

  it('replayed older reports never move a phase or a container back', async () => {
    const nodeId = await seedNode();
    const podId = await seedPod({ nodeId });
    const ingest = newIngest();
    await ingest.refreshNodes();
    const starting = podReport(1, status(podId, 'STARTING', { containers: [container({ phase: 'WAITING' })] }));
    const running = podReport(1, status(podId, 'RUNNING', { containers: [container({ restartCount: 1 })] }));
    const backoff = podReport(
      1,
      status(podId, 'RUNNING', {
        containers: [container({ phase: 'EXITED', exitCode: 1, reason: 'BackOff', restartCount: 2 })],
      }),
    );
    for (const r of [starting, running, backoff]) await send(nodeId, r);
    await drain(ingest);
    const settled = await pod(podId);
    expect(settled).toMatchObject({ phase: 'RUNNING' });
    expect(settled.containers[0]).toMatchObject({ phase: 'EXITED', restartCount: 2, reason: 'BackOff', exitCode: 1 });

    // The same reports again (a replay, or a late duplicate), in any order.
    for (const r of [running, starting, backoff, starting, running]) await send(nodeId, r);
    await drain(ingest);
    const after = await pod(podId);
    expect(after.phase).toBe('RUNNING');
    expect(after.startedAt).toEqual(settled.startedAt);
    expect(after.containers[0]).toMatchObject({ phase: 'EXITED', restartCount: 2, reason: 'BackOff', exitCode: 1 });
    expect((await eventsOf(podId)).map((e) => e.reason)).toEqual(['Started']);
  });

  it('SUCCEEDED and FAILED release exactly the reservation and clear the node', async () => {
    const nodeId = await seedNode();
    const done = await seedPod({ nodeId, phase: 'RUNNING', restartPolicy: 'NEVER', vcpus: 2, memoryMiB: 1024 });
    const failed = await seedPod({ nodeId, phase: 'RUNNING', restartPolicy: 'ON_FAILURE', vcpus: 1, memoryMiB: 700 });
    const pullFailed = await seedPod({ nodeId, phase: 'SCHEDULED', vcpus: 3, memoryMiB: 300 });
    const stays = await seedPod({ nodeId, phase: 'RUNNING', vcpus: 4, memoryMiB: 2048 });
    const version = (await node(nodeId)).desiredVersion;
    const ingest = newIngest();
    await ingest.refreshNodes();

    await send(
      nodeId,
      podReport(1, status(done, 'SUCCEEDED', { containers: [container({ phase: 'EXITED', exitCode: 0 })] })),
    );
    await send(
      nodeId,
      podReport(
        1,
        status(failed, 'FAILED', { reason: 'Error', containers: [container({ phase: 'EXITED', exitCode: 3 })] }),
      ),
    );
    await send(
      nodeId,
      podReport(1, status(pullFailed, 'FAILED', { reason: 'ImagePullBackOff', message: 'manifest unknown' })),
    );
    await drain(ingest);

    expect(await pod(done)).toMatchObject({ phase: 'SUCCEEDED', nodeId: null, reason: 'Completed' });
    expect((await pod(done)).finishedAt).not.toBeNull();
    expect((await pod(done)).containers[0]).toMatchObject({ phase: 'EXITED', exitCode: 0 });
    expect(await pod(failed)).toMatchObject({ phase: 'FAILED', nodeId: null, reason: 'Error' });
    expect(await pod(pullFailed)).toMatchObject({
      phase: 'FAILED',
      nodeId: null,
      reason: 'ImagePullBackOff',
      message: 'manifest unknown',
    });
    expect(await node(nodeId)).toMatchObject({
      allocatedVcpus: 4,
      allocatedMemoryMiB: 2048 + OVERHEAD,
      allocatedPods: 1,
      desiredVersion: version + 3n,
    });
    expect(await pod(stays)).toMatchObject({ phase: 'RUNNING', nodeId });
    expect((await eventsOf(done)).map((e) => e.reason)).toEqual(['Completed']);
    expect((await eventsOf(pullFailed)).map((e) => [e.type, e.reason])).toEqual([['WARNING', 'Failed']]);
    // Quota and IP are kept by terminal phases.
    expect(await backends.db.prisma.tenant.findUniqueOrThrow({ where: { id: tenantId } })).toMatchObject({
      usedPods: 4,
    });
  });

  it('VM lost (ALWAYS): PENDING with backoff, lostCount, capacity released, outbox row and event', async () => {
    const nodeId = await seedNode();
    const podId = await seedPod({ nodeId, phase: 'RUNNING', lostCount: 2, placement: 5, generation: 3 });
    const ingest = newIngest();
    await ingest.refreshNodes();
    const before = Date.now();
    await send(
      nodeId,
      podReport(1, status(podId, 'LOST', { placement: 5, generation: 3, message: 'QEMU exited (signal 9)' })),
    );
    await drain(ingest);

    const p = await pod(podId);
    expect(p).toMatchObject({ phase: 'PENDING', nodeId: null, reason: 'VMLost', lostCount: 3, placement: 5 });
    const wait = (p.placeAfter?.getTime() ?? 0) - before;
    expect(wait).toBeGreaterThanOrEqual(4_000 - 1_000); // base · 2^2, within the clock noise of the test
    expect(wait).toBeLessThanOrEqual(4_000 + 2_000);
    expect(await node(nodeId)).toMatchObject({ allocatedVcpus: 0, allocatedMemoryMiB: 0, allocatedPods: 0 });

    const outbox = await backends.db.pool.query(
      `SELECT id::text AS id, "aggregateType", "aggregateId", "tenantId", generation, kind, payload FROM outbox`,
    );
    expect(outbox.rows).toHaveLength(1);
    expect(outbox.rows[0]).toMatchObject({
      aggregateType: 'pod',
      aggregateId: podId,
      generation: 3,
      kind: 'pod.placement-requested',
      payload: { placement: 5, reason: 'VMLost' },
    });
    expect(jobFromOutboxRow(outbox.rows[0])).toMatchObject({ ok: true });
    const events = await eventsOf(podId);
    expect(events.map((e) => [e.type, e.reason])).toEqual([['WARNING', 'VMLost']]);
    expect(events[0]?.message).toContain(p.placeAfter?.toISOString() ?? 'x');
  });

  it('VM lost (NEVER): FAILED with reason VMLost, no re-placement', async () => {
    const nodeId = await seedNode();
    const podId = await seedPod({ nodeId, phase: 'RUNNING', restartPolicy: 'NEVER' });
    const ingest = newIngest();
    await ingest.refreshNodes();
    await send(nodeId, podReport(1, status(podId, 'LOST')));
    await drain(ingest);
    expect(await pod(podId)).toMatchObject({ phase: 'FAILED', nodeId: null, reason: 'VMLost', lostCount: 0 });
    expect(await node(nodeId)).toMatchObject({ allocatedPods: 0 });
    expect(await backends.db.prisma.outboxMessage.count()).toBe(0);
  });

  it('stop: STOPPED (or LOST) while desired STOPPED → STOPPED, capacity released, quota and IP kept', async () => {
    const nodeId = await seedNode();
    const stopped = await seedPod({ nodeId, phase: 'RUNNING', desiredState: 'STOPPED', generation: 2, ip: '10.0.0.5' });
    const lost = await seedPod({ nodeId, phase: 'STARTING', desiredState: 'STOPPED', generation: 2 });
    const ingest = newIngest();
    await ingest.refreshNodes();
    // An older-generation report that the VM is gone ends the stop too (the outcome the newest desire asks for).
    await send(nodeId, podReport(1, status(stopped, 'STOPPED', { generation: 2 })));
    await send(nodeId, podReport(1, status(lost, 'LOST', { generation: 1 })));
    await drain(ingest);
    expect(await pod(stopped)).toMatchObject({ phase: 'STOPPED', nodeId: null, observedGeneration: 2, ip: '10.0.0.5' });
    expect(await pod(lost)).toMatchObject({ phase: 'STOPPED', nodeId: null, lostCount: 0 });
    expect(await node(nodeId)).toMatchObject({ allocatedVcpus: 0, allocatedMemoryMiB: 0, allocatedPods: 0 });
    expect((await eventsOf(stopped)).map((e) => e.reason)).toEqual(['Stopped']);
    expect(await backends.db.prisma.ipAllocation.count()).toBe(1);
    expect(await backends.db.prisma.tenant.findUniqueOrThrow({ where: { id: tenantId } })).toMatchObject({
      usedPods: 2,
    });
  });

  it('an older-generation SUCCEEDED while desired RUNNING decides nothing terminal', async () => {
    const nodeId = await seedNode();
    const podId = await seedPod({ nodeId, phase: 'RUNNING', generation: 2 });
    const ingest = newIngest();
    await ingest.refreshNodes();
    await send(nodeId, podReport(1, status(podId, 'SUCCEEDED', { generation: 1 })));
    await drain(ingest);
    expect(await pod(podId)).toMatchObject({ phase: 'RUNNING', nodeId, observedGeneration: 1 });
  });

  it('delete: STOPPED while DELETING removes the row and releases capacity, IP and quota', async () => {
    const nodeId = await seedNode();
    const podId = await seedPod({
      nodeId,
      phase: 'DELETING',
      desiredState: 'DELETED',
      generation: 4,
      vcpus: 2,
      memoryMiB: 1024,
      ip: '10.0.0.9',
    });
    const other = await seedPod({ nodeId, phase: 'RUNNING' });
    const ingest = newIngest();
    await ingest.refreshNodes();
    const sub = await subscribe(podId);
    await send(
      nodeId,
      podReport(1, status(podId, 'STOPPED', { generation: 4 }), [nodeEvent('Killed', 'VM destroyed')]),
    );
    await drain(ingest);

    expect(await backends.db.prisma.pod.findUnique({ where: { id: podId } })).toBeNull();
    expect(await backends.db.prisma.ipAllocation.count()).toBe(0);
    expect(await backends.db.prisma.container.count({ where: { podId } })).toBe(0);
    expect(await backends.db.prisma.tenant.findUniqueOrThrow({ where: { id: tenantId } })).toMatchObject({
      usedPods: 1,
      usedVcpus: 1,
      usedMemoryMiB: 512,
    });
    expect(await node(nodeId)).toMatchObject({
      allocatedVcpus: 1,
      allocatedMemoryMiB: 512 + OVERHEAD,
      allocatedPods: 1,
    });
    expect(await pod(other)).toMatchObject({ phase: 'RUNNING' });

    const outbox = await backends.db.pool.query(
      `SELECT id::text AS id, "aggregateType", "aggregateId", "tenantId", generation, kind, payload FROM outbox`,
    );
    expect(outbox.rows).toHaveLength(1);
    expect(outbox.rows[0]).toMatchObject({
      kind: 'pod.deleted',
      aggregateId: podId,
      generation: 4,
      payload: {
        transition: 18,
        previousPhase: 'DELETING',
        phase: null,
        desiredState: 'DELETED',
        nodeId,
        nodeEpoch: 1,
        releasedIp: '10.0.0.9',
      },
    });
    expect(jobFromOutboxRow(outbox.rows[0])).toMatchObject({ ok: true });
    const deleted = await backends.db.prisma.event.findMany({
      where: { tenantId, reason: { in: ['Deleted', 'Killed'] } },
    });
    expect(deleted.map((e) => [e.reason, e.podId])).toEqual([
      ['Killed', null],
      ['Deleted', null],
    ]);
    await waitFor(() => sub.messages.length === 2);
    expect(sub.messages.map((m) => m.reason)).toEqual(['Killed', 'Deleted']);
    await sub.close();
  });

  it('a heartbeat repairs a lost pod report (level-triggered)', async () => {
    const nodeId = await seedNode();
    const podId = await seedPod({ nodeId, phase: 'SCHEDULED' });
    const ingest = newIngest();
    await ingest.refreshNodes();
    // The STARTING and RUNNING reports were lost; the heartbeat says what is true now.
    await send(
      nodeId,
      heartbeat(1, [status(podId, 'RUNNING', { accelerator: 'TCG', containers: [container({ restartCount: 1 })] })]),
    );
    await drain(ingest);
    const p = await pod(podId);
    expect(p).toMatchObject({ phase: 'RUNNING', accelerator: 'TCG' });
    expect(p.containers[0]).toMatchObject({ phase: 'RUNNING', restartCount: 1 });

    // The same heartbeat again writes nothing.
    const updatedAt = p.updatedAt;
    await send(
      nodeId,
      heartbeat(1, [status(podId, 'RUNNING', { accelerator: 'TCG', containers: [container({ restartCount: 1 })] })]),
    );
    await drain(ingest);
    expect((await pod(podId)).updatedAt).toEqual(updatedAt);
    expect(ingest.stats.applied).toBe(1);
  });
});

describe('status ingest: pods missing from a converged heartbeat', () => {
  it('a placed pod missing from the heartbeat of a node that converged on its current set is LOST', async () => {
    const nodeId = await seedNode();
    await backends.db.pool.query(`UPDATE nodes SET "desiredVersion" = 7 WHERE id = $1`, [nodeId]);
    const [listed, vanished, neverRuns] = [
      await seedPod({ nodeId, phase: 'RUNNING' }),
      await seedPod({ nodeId, phase: 'RUNNING' }),
      await seedPod({ nodeId, phase: 'RUNNING', restartPolicy: 'NEVER' }),
    ];
    const ingest = newIngest();
    await ingest.refreshNodes();
    // Applied version 6: the node has not converged yet, so absence means nothing.
    await send(nodeId, heartbeat(1, [status(listed, 'RUNNING')], { appliedVersion: '6' }));
    await drain(ingest);
    expect((await pod(vanished)).phase).toBe('RUNNING');
    expect(ingest.stats.missing).toBe(0);

    await send(nodeId, heartbeat(1, [status(listed, 'RUNNING')], { appliedVersion: '7' }));
    await drain(ingest);
    expect(await pod(listed)).toMatchObject({ phase: 'RUNNING', nodeId });
    expect(await pod(vanished)).toMatchObject({ phase: 'PENDING', nodeId: null, reason: 'VMLost', lostCount: 1 });
    expect(await pod(neverRuns)).toMatchObject({ phase: 'FAILED', nodeId: null });
    expect((await eventsOf(vanished)).map((e) => e.reason)).toEqual(expect.arrayContaining(['VMMissing', 'VMLost']));
    expect(ingest.stats.missing).toBe(2);
  });
});

describe('status ingest: the stream', () => {
  it('acknowledges and counts garbage entries without crashing', async () => {
    const nodeId = await seedNode();
    const podId = await seedPod({ nodeId });
    const ingest = newIngest();
    await ingest.refreshNodes();
    const key = nodeKeys(nodeId, prefix).status;
    await send(nodeId, 'not json');
    await send(nodeId, { kind: 'heartbeat', epoch: 'one' });
    await send(nodeId, { kind: 'mystery' });
    await backends.redis.xadd(key, '*', 'other-field', 'x');
    await send(nodeId, podReport(1, status(podId, 'RUNNING')));
    await drain(ingest);
    expect(ingest.stats.invalid).toBe(4);
    expect(await pod(podId)).toMatchObject({ phase: 'RUNNING' });
    expect(await pendingCount(nodeId)).toBe(0);

    // An entry from a key that is not a node's status stream (processEntries never trusts its input).
    await ingest.processEntries([{ stream: `${prefix}:elsewhere`, id: '1-0', fields: [STATUS_FIELD, '{}'] }]);
    expect(ingest.stats.invalid).toBe(5);
  });

  it('two ingest instances sharing the group process each entry once', async () => {
    const nodes = [await seedNode(), await seedNode()];
    const pods = [
      await seedPod({ nodeId: nodes[0] ?? null, phase: 'RUNNING' }),
      await seedPod({ nodeId: nodes[1] ?? null, phase: 'RUNNING' }),
    ];
    // A claim timeout far above a batch's duration: nothing is taken over from a live consumer.
    const first = newIngest({ INGEST_CLAIM_IDLE_MS: 30_000 });
    const second = newIngest({ INGEST_CLAIM_IDLE_MS: 30_000 });
    await first.refreshNodes();
    await second.refreshNodes();
    first.start();
    second.start();
    const perNode = 150;
    for (let i = 0; i < perNode; i++) {
      for (const [n, nodeId] of nodes.entries()) {
        const podId = pods[n] ?? '';
        await send(nodeId, podReport(1, status(podId, 'RUNNING'), [nodeEvent('Tick', `tick ${i}`)]));
      }
    }
    await waitFor(async () => (await backends.db.prisma.event.count()) >= 2 * perNode);
    await waitFor(() => first.stats.entries + second.stats.entries >= 2 * perNode);
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Both consumers took part (entries are handed out per read, so each read its share).
    expect(first.stats.entries).toBeGreaterThan(0);
    expect(second.stats.entries).toBeGreaterThan(0);
    expect(first.stats.entries + second.stats.entries).toBe(2 * perNode);
    for (const podId of pods) {
      const ticks = (await eventsOf(podId)).map((e) => e.message);
      expect(ticks).toHaveLength(perNode);
      expect(new Set(ticks).size).toBe(perNode);
    }
    for (const nodeId of nodes) expect(await pendingCount(nodeId)).toBe(0);
  });

  it('claims the entries a dead consumer left unacknowledged', async () => {
    const nodeId = await seedNode();
    const podId = await seedPod({ nodeId });
    const ingest = newIngest();
    await ingest.refreshNodes();
    const key = nodeKeys(nodeId, prefix).status;
    await send(nodeId, podReport(1, status(podId, 'STARTING')));
    // A replica read it and died before acknowledging.
    await backends.redis.xreadgroup('GROUP', STATUS_CONSUMER_GROUP, 'dead-replica', 'COUNT', 10, 'STREAMS', key, '>');
    expect(await pendingCount(nodeId)).toBe(1);
    expect(await ingest.claimIdle()).toBe(0); // not idle long enough yet
    await new Promise((resolve) => setTimeout(resolve, SETTINGS.INGEST_CLAIM_IDLE_MS + 50));
    expect(await ingest.claimIdle()).toBe(1);
    expect(await pod(podId)).toMatchObject({ phase: 'STARTING' });
    expect(await pendingCount(nodeId)).toBe(0);
  });

  it('the loop picks up nodes that join after it started, and stops gracefully', async () => {
    const ingest = newIngest();
    ingest.start();
    const nodeId = await seedNode({ status: 'REGISTERED' });
    await waitFor(() => ingest.streamKeys.includes(nodeKeys(nodeId, prefix).status));
    await send(nodeId, heartbeat(1));
    await waitFor(async () => (await node(nodeId)).status === 'READY');
    await ingest.stop();
    expect(await pendingCount(nodeId)).toBe(0);
  });
});
