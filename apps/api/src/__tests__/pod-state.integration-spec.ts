import type { DesiredState, PodPhase } from '@caas/db';
import pg from 'pg';
import { createNode, createPod, GET_POD, podMutation, rowCounts, setPod } from '../pod/__tests__/pod-fixtures';
import type { CreatedTenant, Data, TestApi } from './support/test-api';
import { dataOf, expectError, startTestApi } from './support/test-api';

let api: TestApi;
let tenant: CreatedTenant;
let node: { id: string; name: string };

beforeAll(async () => {
  api = await startTestApi();
  tenant = await api.createTenant();
  await api.prisma.tenant.update({
    where: { id: tenant.tenantId },
    data: { maxPods: 1000, maxVcpus: 1000, maxMemoryMiB: 1_000_000 },
  });
  node = await createNode(api);
});

afterAll(async () => {
  await api?.close();
});

type Mutation = 'stopPod' | 'startPod' | 'restartPod' | 'deletePod';
const VM_PHASES: PodPhase[] = ['SCHEDULED', 'STARTING', 'RUNNING', 'DELETING'];

/** A pod put into a phase as the scheduler would have (VM phases on a node). */
async function podIn(phase: PodPhase, desiredState: DesiredState): Promise<Data> {
  const pod = await createPod(api, tenant.ownerToken);
  const placed = VM_PHASES.includes(phase);
  await setPod(api, pod.id, {
    phase,
    desiredState,
    ...(placed && { node: { connect: { id: node.id } }, nodeEpoch: 1, scheduledAt: new Date() }),
    ...(phase === 'RUNNING' && { startedAt: new Date(), accelerator: 'TCG' }),
  });
  return pod;
}

const call = (mutation: Mutation, id: string) => api.gql(podMutation(mutation), { id }, tenant.ownerToken);
const row = (id: string) => api.prisma.pod.findUnique({ where: { id } });
const outboxOf = (id: string) =>
  api.prisma.outboxMessage.findMany({
    where: { aggregateId: id, kind: { not: 'pod.created' } },
    orderBy: { id: 'asc' },
  });
const eventsOf = (id: string) =>
  api.prisma.event.findMany({ where: { podId: id, reason: { not: 'Created' } }, orderBy: { id: 'asc' } });

/**
 * ADR-002, "Mutations by phase": every situation × every mutation. `ok` rows give the resulting phase,
 * desired state, outbox kind and event reason.
 */
type Ok = { phase: PodPhase | 'unchanged' | 'removed'; desired: DesiredState; kind: string; reason: string };
const stop13: Ok = {
  phase: 'unchanged',
  desired: 'STOPPED',
  kind: 'pod.desired-state-changed',
  reason: 'StopRequested',
};
const delete17: Ok = {
  phase: 'DELETING',
  desired: 'DELETED',
  kind: 'pod.desired-state-changed',
  reason: 'DeleteRequested',
};
const delete19: Ok = { phase: 'removed', desired: 'DELETED', kind: 'pod.deleted', reason: 'Deleted' };
const start15: Ok = {
  phase: 'PENDING',
  desired: 'RUNNING',
  kind: 'pod.desired-state-changed',
  reason: 'StartRequested',
};
const restart16: Ok = {
  phase: 'RUNNING',
  desired: 'RUNNING',
  kind: 'pod.restart-requested',
  reason: 'RestartRequested',
};
const stop12: Ok = { phase: 'STOPPED', desired: 'STOPPED', kind: 'pod.desired-state-changed', reason: 'Stopped' };

const TABLE: [PodPhase, DesiredState, Record<Mutation, Ok | 'noop' | 'CONFLICT'>][] = [
  ['PENDING', 'RUNNING', { stopPod: stop12, startPod: 'noop', restartPod: 'noop', deletePod: delete19 }],
  ['SCHEDULED', 'RUNNING', { stopPod: stop13, startPod: 'noop', restartPod: 'noop', deletePod: delete17 }],
  ['STARTING', 'RUNNING', { stopPod: stop13, startPod: 'noop', restartPod: 'noop', deletePod: delete17 }],
  ['RUNNING', 'RUNNING', { stopPod: stop13, startPod: 'noop', restartPod: restart16, deletePod: delete17 }],
  ['SCHEDULED', 'STOPPED', { stopPod: 'noop', startPod: 'CONFLICT', restartPod: 'CONFLICT', deletePod: delete17 }],
  ['RUNNING', 'STOPPED', { stopPod: 'noop', startPod: 'CONFLICT', restartPod: 'CONFLICT', deletePod: delete17 }],
  ['STOPPED', 'STOPPED', { stopPod: 'noop', startPod: start15, restartPod: 'CONFLICT', deletePod: delete19 }],
  ['SUCCEEDED', 'RUNNING', { stopPod: 'noop', startPod: start15, restartPod: 'CONFLICT', deletePod: delete19 }],
  ['FAILED', 'RUNNING', { stopPod: 'noop', startPod: start15, restartPod: 'CONFLICT', deletePod: delete19 }],
  ['DELETING', 'DELETED', { stopPod: 'CONFLICT', startPod: 'CONFLICT', restartPod: 'CONFLICT', deletePod: 'noop' }],
];

const CASES = TABLE.flatMap(([phase, desired, row]) =>
  (Object.keys(row) as Mutation[]).map((mutation) => [phase, desired, mutation, row[mutation]] as const),
);

describe('mutations by phase (ADR-002)', () => {
  it.each(CASES.map(([p, d, m, e]) => [p, d, m, typeof e === 'string' ? e : `ok → ${e.phase}`, e] as const))(
    '%s (desired %s): %s → %s',
    async (phase, desired, mutation, _label, expected) => {
      const pod = await podIn(phase, desired);
      const before = await row(pod.id);
      const counts = await rowCounts(api, tenant.tenantId);
      const response = await call(mutation, pod.id);

      if (expected === 'CONFLICT') {
        expectError(response, 'CONFLICT', 'INVALID_POD_STATE');
        expect(response.body.errors?.[0].message).toContain(phase);
        expect(await row(pod.id)).toEqual(before);
        expect(await rowCounts(api, tenant.tenantId)).toEqual(counts);
        return;
      }
      const result = dataOf(response)[mutation];
      if (expected === 'noop') {
        expect(result).toMatchObject({ id: pod.id, phase, desiredState: desired, generation: 1 });
        expect(await row(pod.id)).toEqual(before);
        expect(await rowCounts(api, tenant.tenantId)).toEqual(counts);
        return;
      }

      // An accepted change: generation + 1, one outbox row and one event carrying it, in the same transaction.
      const phaseAfter = expected.phase === 'unchanged' ? phase : expected.phase;
      expect(result).toMatchObject({ id: pod.id, desiredState: expected.desired, generation: 2 });
      const outbox = await api.prisma.outboxMessage.findMany({
        where: { aggregateId: pod.id, kind: { not: 'pod.created' } },
      });
      expect(outbox).toEqual([
        expect.objectContaining({
          kind: expected.kind,
          generation: 2,
          aggregateType: 'pod',
          tenantId: tenant.tenantId,
        }),
      ]);
      const events = await api.prisma.event.findMany({
        where: { tenantId: tenant.tenantId, reason: expected.reason, id: { gt: 0 } },
        orderBy: { id: 'desc' },
        take: 1,
      });
      expect(events).toHaveLength(1);
      expect(events[0].message).toContain(pod.name);

      if (phaseAfter === 'removed') {
        expect(result.phase).toBe(phase);
        expect(await row(pod.id)).toBeNull();
        expect(events[0].podId).toBeNull();
        expect(await rowCounts(api, tenant.tenantId)).toMatchObject({
          pods: counts.pods - 1,
          ipAllocations: counts.ipAllocations - 1,
          usedPods: counts.usedPods - 1,
        });
      } else {
        expect(result.phase).toBe(phaseAfter);
        expect(await row(pod.id)).toMatchObject({ phase: phaseAfter, desiredState: expected.desired, generation: 2 });
        expect(events[0].podId).toBe(pod.id);
        // Quota and address stay with the pod row.
        expect(await rowCounts(api, tenant.tenantId)).toMatchObject({
          pods: counts.pods,
          ipAllocations: counts.ipAllocations,
          usedPods: counts.usedPods,
        });
        expect(result.ip).toBe(pod.ip);
      }
    },
  );
});

describe('transitions in detail', () => {
  it('12: a PENDING pod stops at once and clears its reason', async () => {
    const pod = await podIn('PENDING', 'RUNNING');
    await setPod(api, pod.id, { reason: 'Unschedulable', message: 'no node fits' });
    const stopped = dataOf(await call('stopPod', pod.id)).stopPod;
    expect(stopped).toMatchObject({ phase: 'STOPPED', desiredState: 'STOPPED', reason: null, message: null });
    expect((await outboxOf(pod.id))[0].payload).toMatchObject({ transition: 12, previousPhase: 'PENDING' });
  });

  it('13: a running pod keeps its phase and node until the node reports; a second stop is a no-op', async () => {
    const pod = await podIn('RUNNING', 'RUNNING');
    const stopping = dataOf(await call('stopPod', pod.id)).stopPod;
    expect(stopping).toMatchObject({ phase: 'RUNNING', desiredState: 'STOPPED', nodeName: node.name, generation: 2 });
    expect((await outboxOf(pod.id))[0].payload).toMatchObject({ transition: 13, nodeId: node.id, nodeEpoch: 1 });
    const again = dataOf(await call('stopPod', pod.id)).stopPod;
    expect(again.generation).toBe(2);
    expect(await outboxOf(pod.id)).toHaveLength(1);
    // While stopping, start and restart are refused (retry once STOPPED).
    const start = await call('startPod', pod.id);
    expectError(start, 'CONFLICT', 'INVALID_POD_STATE');
    expect(start.body.errors?.[0].message).toMatch(/stopping/);
  });

  it('15: starting a finished pod resets it and its containers for a fresh placement, keeping IP and digests', async () => {
    const pod = await podIn('FAILED', 'RUNNING');
    const digests = { 'registry.example.com/team/app:1.0': `sha256:${'f'.repeat(64)}` };
    await setPod(api, pod.id, {
      reason: 'Error',
      message: 'main exited 1',
      startedAt: new Date(),
      finishedAt: new Date(),
      scheduledAt: new Date(),
      accelerator: 'KVM',
      imageDigests: digests,
      observedGeneration: 1,
    });
    await api.prisma.container.updateMany({
      where: { podId: pod.id },
      data: {
        phase: 'EXITED',
        exitCode: 1,
        signal: 'SIGKILL',
        reason: 'Error',
        restartCount: 3,
        startedAt: new Date(),
        finishedAt: new Date(),
      },
    });
    const started = dataOf(await call('startPod', pod.id)).startPod;
    expect(started).toMatchObject({
      phase: 'PENDING',
      desiredState: 'RUNNING',
      generation: 2,
      observedGeneration: 1,
      reason: null,
      message: null,
      scheduledAt: null,
      startedAt: null,
      finishedAt: null,
      accelerator: null,
      nodeName: null,
      ip: pod.ip,
      imageDigests: [
        { image: 'registry.example.com/team/app:1.0', digest: digests['registry.example.com/team/app:1.0'] },
      ],
    });
    expect(started.containers[0]).toMatchObject({
      phase: 'WAITING',
      exitCode: null,
      signal: null,
      reason: null,
      restartCount: 0,
      startedAt: null,
      finishedAt: null,
    });
  });

  it('16: a restart is recorded in the spec with its generation, for the node to act on', async () => {
    const pod = await podIn('RUNNING', 'RUNNING');
    await setPod(api, pod.id, { spec: { nodeSelector: { rack: 'r1' } } });
    const restarted = dataOf(await call('restartPod', pod.id)).restartPod;
    expect(restarted).toMatchObject({ phase: 'RUNNING', desiredState: 'RUNNING', generation: 2 });
    expect((await row(pod.id))?.spec).toEqual({
      nodeSelector: { rack: 'r1' },
      restartRequest: { generation: 2, at: expect.any(String) },
    });
    dataOf(await call('restartPod', pod.id));
    expect((await row(pod.id))?.spec).toMatchObject({ restartRequest: { generation: 3 } });
    expect((await outboxOf(pod.id)).map((o) => [o.kind, o.generation])).toEqual([
      ['pod.restart-requested', 2],
      ['pod.restart-requested', 3],
    ]);
    expect((await eventsOf(pod.id)).map((e) => e.reason)).toEqual(['RestartRequested', 'RestartRequested']);
  });

  it('17: deleting a pod with a VM marks it DELETING; deleting again is a no-op; the rest is CONFLICT', async () => {
    const pod = await podIn('STARTING', 'STOPPED');
    const deleting = dataOf(await call('deletePod', pod.id)).deletePod;
    expect(deleting).toMatchObject({ phase: 'DELETING', desiredState: 'DELETED', generation: 2, nodeName: node.name });
    expect(dataOf(await call('deletePod', pod.id)).deletePod.generation).toBe(2);
    for (const mutation of ['stopPod', 'startPod', 'restartPod'] as const) {
      expectError(await call(mutation, pod.id), 'CONFLICT', 'INVALID_POD_STATE');
    }
    expect(dataOf(await api.gql(GET_POD, { id: pod.id }, tenant.ownerToken)).pod.phase).toBe('DELETING');
  });

  it('19: deleting a pod without a VM removes it with containers and address, and returns what it was', async () => {
    const pod = await podIn('SUCCEEDED', 'RUNNING');
    const deleted = dataOf(await call('deletePod', pod.id)).deletePod;
    expect(deleted).toMatchObject({ id: pod.id, name: pod.name, desiredState: 'DELETED', generation: 2, ip: pod.ip });
    expect(deleted.containers).toEqual(pod.containers);
    expect(await api.prisma.container.count({ where: { podId: pod.id } })).toBe(0);
    expect(await api.prisma.ipAllocation.count({ where: { podId: pod.id } })).toBe(0);
    const [outbox] = await outboxOf(pod.id);
    expect(outbox).toMatchObject({ kind: 'pod.deleted', generation: 2 });
    expect(outbox.payload).toMatchObject({ transition: 19, releasedIp: pod.ip, previousPhase: 'SUCCEEDED' });
    expectError(await api.gql(GET_POD, { id: pod.id }, tenant.ownerToken), 'NOT_FOUND', 'POD_NOT_FOUND');
    expectError(await call('deletePod', pod.id), 'NOT_FOUND', 'POD_NOT_FOUND');
  });
});

describe('concurrency', () => {
  it('applies one of many concurrent stops; the others find it stopped (no-op)', async () => {
    const pod = await podIn('PENDING', 'RUNNING');
    const responses = await Promise.all(Array.from({ length: 10 }, () => call('stopPod', pod.id)));
    for (const response of responses)
      expect(dataOf(response).stopPod).toMatchObject({ phase: 'STOPPED', generation: 2 });
    expect(await outboxOf(pod.id)).toHaveLength(1);
    expect(await eventsOf(pod.id)).toHaveLength(1);
  });

  it('releases quota once when many deletes race', async () => {
    const pod = await podIn('STOPPED', 'STOPPED');
    const before = await rowCounts(api, tenant.tenantId);
    const responses = await Promise.all(Array.from({ length: 8 }, () => call('deletePod', pod.id)));
    const ok = responses.filter((r) => !r.body.errors);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    for (const r of responses.filter((x) => x.body.errors)) expectError(r, 'NOT_FOUND', 'POD_NOT_FOUND');
    expect(await rowCounts(api, tenant.tenantId)).toMatchObject({
      pods: before.pods - 1,
      usedPods: before.usedPods - 1,
      usedVcpus: before.usedVcpus - 1,
    });
    expect(await api.prisma.outboxMessage.count({ where: { aggregateId: pod.id, kind: 'pod.deleted' } })).toBe(1);
  });

  it('is conditional on the phase it read: a placement committing first turns a stop from 12 into 13', async () => {
    const pod = await podIn('PENDING', 'RUNNING');
    const client = new pg.Client({ connectionString: api.databaseUrl });
    await client.connect();
    try {
      // The scheduler places the pod in a transaction still open while stopPod reads PENDING.
      await client.query('BEGIN');
      await client.query(
        `UPDATE pods SET phase = 'SCHEDULED', "nodeId" = $2, "nodeEpoch" = 1, "scheduledAt" = now(), "updatedAt" = now() WHERE id = $1`,
        [pod.id, node.id],
      );
      let settled = false;
      const stop = call('stopPod', pod.id).finally(() => {
        settled = true;
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      // stopPod read PENDING and waits on the row for its conditional update.
      expect(settled).toBe(false);
      await client.query('COMMIT');
      const stopped = dataOf(await stop).stopPod;
      expect(stopped).toMatchObject({
        phase: 'SCHEDULED',
        desiredState: 'STOPPED',
        generation: 2,
        nodeName: node.name,
      });
      const outbox = await outboxOf(pod.id);
      expect(outbox).toHaveLength(1);
      expect(outbox[0].payload).toMatchObject({ transition: 13, previousPhase: 'SCHEDULED' });
    } finally {
      await client.end();
    }
  });
});
