import {
  JOB_AGGREGATE,
  JOB_QUEUE,
  JOB_SCHEMAS,
  JobName,
  QUEUE_JOB_OPTIONS,
  QueueName,
  jobFromOutboxRow,
  jobIdFor,
  jobOptionsFor,
  nodeKeyPattern,
  nodeQueuePrefix,
  parseJob,
} from '../../index';
import type { Job, JobHandlers, OutboxRow } from '../../index';

const TENANT = '6f1c2a7e-3b7d-4a52-9a3e-0d1f4b9c8e21';
const POD = '0b6e5a4c-1d2f-4e3a-8b7c-9d0e1f2a3b4c';
const NODE = 'c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f';
const POLICY = 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';

const row = (overrides: Partial<OutboxRow>): OutboxRow => ({
  id: '42',
  aggregateType: 'pod',
  aggregateId: POD,
  tenantId: TENANT,
  generation: 1,
  kind: 'pod.created',
  payload: { phase: 'PENDING', desiredState: 'RUNNING', vcpus: 1, memoryMiB: 256, ip: '10.0.0.2' },
  ...overrides,
});

/** One valid outbox row per kind, as the API writes them today. */
const ROWS: Record<JobName, OutboxRow> = {
  [JobName.PodCreated]: row({}),
  [JobName.PodDesiredStateChanged]: row({
    kind: 'pod.desired-state-changed',
    generation: 2,
    payload: {
      transition: 13,
      previousPhase: 'RUNNING',
      phase: 'RUNNING',
      desiredState: 'STOPPED',
      nodeId: NODE,
      nodeEpoch: 1,
    },
  }),
  [JobName.PodRestartRequested]: row({
    kind: 'pod.restart-requested',
    generation: 3,
    payload: {
      transition: 16,
      previousPhase: 'RUNNING',
      phase: 'RUNNING',
      desiredState: 'RUNNING',
      nodeId: NODE,
      nodeEpoch: 2,
    },
  }),
  [JobName.PodDeleted]: row({
    kind: 'pod.deleted',
    generation: 4,
    payload: {
      transition: 19,
      previousPhase: 'STOPPED',
      phase: null,
      desiredState: 'DELETED',
      nodeId: null,
      nodeEpoch: null,
      releasedIp: '10.0.0.2',
    },
  }),
  [JobName.PodPlacementRequested]: row({
    kind: 'pod.placement-requested',
    generation: 2,
    payload: { placement: 3, reason: 'NodeLost' },
  }),
  [JobName.NetworkPolicyCreated]: row({
    aggregateType: 'network-policy',
    aggregateId: POLICY,
    kind: 'network-policy.created',
    payload: { name: 'allow-web' },
  }),
  [JobName.NetworkPolicyUpdated]: row({
    aggregateType: 'network-policy',
    aggregateId: POLICY,
    kind: 'network-policy.updated',
    generation: 2,
    payload: { name: 'allow-web' },
  }),
  [JobName.NetworkPolicyDeleted]: row({
    aggregateType: 'network-policy',
    aggregateId: POLICY,
    kind: 'network-policy.deleted',
    generation: 3,
    payload: { name: 'allow-web' },
  }),
  [JobName.TenantQuotaChanged]: row({
    aggregateType: 'tenant',
    aggregateId: TENANT,
    kind: 'tenant.quota-changed',
    generation: 2,
    payload: { status: 'ACTIVE' },
  }),
  [JobName.TenantSuspended]: row({
    aggregateType: 'tenant',
    aggregateId: TENANT,
    kind: 'tenant.suspended',
    generation: 3,
    payload: { status: 'SUSPENDED' },
  }),
  [JobName.TenantUnsuspended]: row({
    aggregateType: 'tenant',
    aggregateId: TENANT,
    kind: 'tenant.unsuspended',
    generation: 4,
    payload: { status: 'ACTIVE' },
  }),
  [JobName.NodeCordoned]: row({
    aggregateType: 'node',
    aggregateId: NODE,
    tenantId: null,
    kind: 'node.cordoned',
    generation: 1,
    payload: { cordoned: true, draining: false, epoch: 1, desiredVersion: '1' },
  }),
  [JobName.NodeUncordoned]: row({
    aggregateType: 'node',
    aggregateId: NODE,
    tenantId: null,
    kind: 'node.uncordoned',
    generation: 2,
    payload: { cordoned: false, draining: false, epoch: 1, desiredVersion: '2' },
  }),
  [JobName.NodeDrained]: row({
    aggregateType: 'node',
    aggregateId: NODE,
    tenantId: null,
    kind: 'node.drained',
    generation: 3,
    payload: { cordoned: true, draining: true, epoch: 1, desiredVersion: '3' },
  }),
};

const jobOf = (outbox: OutboxRow): Job => {
  const result = jobFromOutboxRow(outbox);
  if (!result.ok) throw new Error(result.error);
  return result.job;
};

describe('queue contract', () => {
  it('gives every job name a schema, an aggregate and a queue', () => {
    for (const name of Object.values(JobName)) {
      expect(JOB_SCHEMAS[name]).toBeDefined();
      expect(JOB_AGGREGATE[name]).toMatch(/^(pod|network-policy|tenant|node)$/);
      expect(Object.values(QueueName)).toContain(JOB_QUEUE[name]);
    }
    for (const queue of Object.values(QueueName)) {
      expect(queue).not.toContain(':');
      expect(queue).not.toBe('node'); // reserved for the per-node namespace
      expect(QUEUE_JOB_OPTIONS[queue].removeOnComplete).toEqual(expect.objectContaining({ count: expect.any(Number) }));
      expect(QUEUE_JOB_OPTIONS[queue].removeOnFail).toEqual(expect.objectContaining({ count: expect.any(Number) }));
    }
  });

  it('turns each kind the API writes into its job: payload plus the envelope from the row', () => {
    expect(jobOf(ROWS[JobName.PodCreated])).toEqual({
      name: JobName.PodCreated,
      data: {
        outboxId: '42',
        tenantId: TENANT,
        podId: POD,
        generation: 1,
        phase: 'PENDING',
        desiredState: 'RUNNING',
        vcpus: 1,
        memoryMiB: 256,
        ip: '10.0.0.2',
      },
    });
    expect(jobOf(ROWS[JobName.NodeDrained]).data).toEqual({
      outboxId: '42',
      tenantId: null,
      nodeId: NODE,
      generation: 3,
      cordoned: true,
      draining: true,
      epoch: 1,
      desiredVersion: '3',
    });
    for (const [name, outbox] of Object.entries(ROWS)) expect(jobOf(outbox).name).toBe(name);
  });

  it('takes the envelope from the row, never from the payload', () => {
    const job = jobOf(
      row({
        payload: { ...(ROWS[JobName.PodCreated].payload as object), tenantId: POLICY, podId: NODE, generation: 9 },
      }),
    );
    expect(job.data).toEqual(expect.objectContaining({ tenantId: TENANT, podId: POD, generation: 1 }));
  });

  it('derives deterministic job ids without ":" that are unique per (aggregate, generation, kind)', () => {
    const ids = Object.values(ROWS).map((outbox) => jobIdFor(jobOf(outbox)));
    expect(ids[0]).toBe(`pod_${POD}_1_pod.created`);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) {
      expect(id).not.toContain(':');
      expect(`${parseInt(id, 10)}`).not.toBe(id);
    }
    // The outbox row id and the payload do not take part: a re-announcement is the same job.
    expect(
      jobIdFor(jobOf(row({ id: '43', payload: { ...(ROWS[JobName.PodCreated].payload as object), vcpus: 2 } }))),
    ).toBe(ids[0]);
    expect(jobIdFor(jobOf(row({ generation: 2 })))).not.toBe(ids[0]);
    expect(jobOptionsFor(jobOf(ROWS[JobName.PodCreated]))).toEqual({
      ...QUEUE_JOB_OPTIONS[QueueName.Placement],
      jobId: ids[0],
    });
  });

  it.each([
    ['an unknown kind', row({ kind: 'pod.exploded' }), /unknown outbox kind "pod.exploded"/],
    ['a kind on the wrong aggregate', row({ aggregateType: 'node' }), /pod.created announces a pod, not a "node"/],
    ['a payload that is not an object', row({ payload: [1, 2] }), /payload is not a JSON object/],
    [
      'a payload missing a field',
      row({ payload: { phase: 'PENDING', desiredState: 'RUNNING', vcpus: 1, ip: null } }),
      /memoryMiB/,
    ],
    [
      'a payload with a wrong type',
      row({ payload: { phase: 'BOOTING', desiredState: 'RUNNING', vcpus: 1, memoryMiB: 1, ip: null } }),
      /phase/,
    ],
    ['a pod row without a tenant', row({ tenantId: null }), /tenantId/],
    [
      'a tenant row about another tenant',
      row({ ...ROWS[JobName.TenantSuspended], aggregateId: POD }),
      /is not the aggregate/,
    ],
    ['a node row with a tenant', row({ ...ROWS[JobName.NodeCordoned], tenantId: TENANT }), /tenantId/],
    ['an aggregate id that is not a UUID', row({ aggregateId: 'pod-1' }), /podId/],
    ['a negative generation', row({ generation: -1 }), /generation/],
  ])('refuses %s', (_label, outbox, error) => {
    const result = jobFromOutboxRow(outbox);
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.error).toMatch(error);
  });

  it('validates what a worker receives, by name', () => {
    const job = jobOf(ROWS[JobName.TenantSuspended]);
    expect(parseJob(job.name, job.data)).toEqual({ ok: true, job });
    expect(parseJob('tenant.renamed', job.data)).toEqual({ ok: false, error: 'unknown job name "tenant.renamed"' });
    expect(parseJob(JobName.PodCreated, job.data).ok).toBe(false);
  });

  it('types handlers per job name', async () => {
    const seen: string[] = [];
    const record = (data: { generation: number }) => {
      seen.push(String(data.generation));
      return Promise.resolve();
    };
    // Missing one name fails to compile; each handler sees its own payload type.
    const handlers: JobHandlers = {
      [JobName.PodCreated]: (data) => record({ generation: data.vcpus }),
      [JobName.PodDesiredStateChanged]: record,
      [JobName.PodRestartRequested]: record,
      [JobName.PodDeleted]: record,
      [JobName.PodPlacementRequested]: (data) => record({ generation: data.placement }),
      [JobName.NetworkPolicyCreated]: (data) => record({ generation: data.name.length }),
      [JobName.NetworkPolicyUpdated]: record,
      [JobName.NetworkPolicyDeleted]: record,
      [JobName.TenantQuotaChanged]: record,
      [JobName.TenantSuspended]: record,
      [JobName.TenantUnsuspended]: record,
      [JobName.NodeCordoned]: (data) => record({ generation: data.epoch }),
      [JobName.NodeUncordoned]: record,
      [JobName.NodeDrained]: record,
    };
    await handlers[JobName.PodCreated](jobOf(ROWS[JobName.PodCreated]).data as never, undefined);
    expect(seen).toEqual(['1']);
  });
});

describe('per-node queues', () => {
  it('live under a prefix of their own that one ACL pattern covers', () => {
    expect(nodeQueuePrefix(NODE)).toBe(`bull:node:${NODE}`);
    expect(nodeQueuePrefix(NODE, 'caas')).toBe(`caas:node:${NODE}`);
    expect(nodeKeyPattern(NODE)).toBe(`bull:node:${NODE}:*`);
  });

  it.each(['*', 'node-a', `${NODE}:x`, NODE.toUpperCase(), `${NODE}*`, ''])('refuses the node id %j', (nodeId) => {
    expect(() => nodeQueuePrefix(nodeId)).toThrow(/not a lower-case UUID/);
  });

  it('refuses a base prefix with glob characters', () => {
    expect(() => nodeQueuePrefix(NODE, 'bull*')).toThrow(/unusable base prefix/);
  });
});
