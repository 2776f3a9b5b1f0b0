import { z } from 'zod';
import { QueueName } from './queue-names';

/**
 * Every job of every control-plane queue. The name is the outbox `kind` that announces it, so the relay
 * maps rows to jobs one to one; an outbox kind missing here is refused by the relay (dead-lettered).
 */
export enum JobName {
  PodCreated = 'pod.created',
  PodDesiredStateChanged = 'pod.desired-state-changed',
  PodRestartRequested = 'pod.restart-requested',
  PodDeleted = 'pod.deleted',
  /** The pod must be placed again: its VM or node was lost, it was drained away, or reconcile found it waiting. */
  PodPlacementRequested = 'pod.placement-requested',
  NetworkPolicyCreated = 'network-policy.created',
  NetworkPolicyUpdated = 'network-policy.updated',
  NetworkPolicyDeleted = 'network-policy.deleted',
  TenantQuotaChanged = 'tenant.quota-changed',
  TenantSuspended = 'tenant.suspended',
  TenantUnsuspended = 'tenant.unsuspended',
  NodeCordoned = 'node.cordoned',
  NodeUncordoned = 'node.uncordoned',
  NodeDrained = 'node.drained',
}

/** The outbox `aggregateType`s, and the payload field that carries the aggregate's id. */
export type AggregateType = 'pod' | 'network-policy' | 'tenant' | 'node';

const AGGREGATE_ID_FIELD = {
  pod: 'podId',
  'network-policy': 'networkPolicyId',
  tenant: 'tenantId',
  node: 'nodeId',
} as const satisfies Record<AggregateType, string>;

export type AggregateIdField = (typeof AGGREGATE_ID_FIELD)[AggregateType];

export const aggregateIdField = (type: AggregateType): AggregateIdField => AGGREGATE_ID_FIELD[type];

export const JOB_AGGREGATE = {
  [JobName.PodCreated]: 'pod',
  [JobName.PodDesiredStateChanged]: 'pod',
  [JobName.PodRestartRequested]: 'pod',
  [JobName.PodDeleted]: 'pod',
  [JobName.PodPlacementRequested]: 'pod',
  [JobName.NetworkPolicyCreated]: 'network-policy',
  [JobName.NetworkPolicyUpdated]: 'network-policy',
  [JobName.NetworkPolicyDeleted]: 'network-policy',
  [JobName.TenantQuotaChanged]: 'tenant',
  [JobName.TenantSuspended]: 'tenant',
  [JobName.TenantUnsuspended]: 'tenant',
  [JobName.NodeCordoned]: 'node',
  [JobName.NodeUncordoned]: 'node',
  [JobName.NodeDrained]: 'node',
} as const satisfies Record<JobName, AggregateType>;

/** Which queue carries each job. Everything goes to the scheduler's queue for now. */
export const JOB_QUEUE: Record<JobName, QueueName> = {
  [JobName.PodCreated]: QueueName.Placement,
  [JobName.PodDesiredStateChanged]: QueueName.Placement,
  [JobName.PodRestartRequested]: QueueName.Placement,
  [JobName.PodDeleted]: QueueName.Placement,
  [JobName.PodPlacementRequested]: QueueName.Placement,
  [JobName.NetworkPolicyCreated]: QueueName.Placement,
  [JobName.NetworkPolicyUpdated]: QueueName.Placement,
  [JobName.NetworkPolicyDeleted]: QueueName.Placement,
  [JobName.TenantQuotaChanged]: QueueName.Placement,
  [JobName.TenantSuspended]: QueueName.Placement,
  [JobName.TenantUnsuspended]: QueueName.Placement,
  [JobName.NodeCordoned]: QueueName.Placement,
  [JobName.NodeUncordoned]: QueueName.Placement,
  [JobName.NodeDrained]: QueueName.Placement,
};

export const queueFor = (name: JobName): QueueName => JOB_QUEUE[name];

// ─────────────────────────────────────────── payloads ───────────────────────────────────────────

const uuid = z.string().uuid();
const generation = z.number().int().nonnegative();
/** The outbox row the job came from (a BIGSERIAL, as a decimal string): for logs and tracing only. */
const outboxId = z.string().regex(/^[1-9][0-9]{0,18}$/, 'must be a positive decimal integer');
const podPhase = z.enum(['PENDING', 'SCHEDULED', 'STARTING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'STOPPED', 'DELETING']);
const desiredState = z.enum(['RUNNING', 'STOPPED', 'DELETED']);
const ipv4 = z.string().ip({ version: 'v4' });

/**
 * Every payload: the tenant it belongs to (`null` only for node jobs: a node belongs to no tenant) and the
 * aggregate's generation it announces. Handlers are idempotent on (aggregate id, generation): BullMQ
 * delivers at least once, and a job id is only deduplicated while the job still exists.
 */
const tenantScoped = { outboxId, tenantId: uuid, generation };

const podRef = z.object({ ...tenantScoped, podId: uuid });

export const podCreatedSchema = podRef.extend({
  phase: podPhase,
  desiredState,
  vcpus: z.number().int().positive(),
  memoryMiB: z.number().int().positive(),
  ip: ipv4.nullable(),
});

/** stopPod / startPod / restartPod / deletePod (ADR-002 transitions 12, 13, 15, 16, 17, 19). */
export const podChangedSchema = podRef.extend({
  transition: z.number().int().positive(),
  previousPhase: podPhase,
  /** `null` when the row is gone (transition 19). */
  phase: podPhase.nullable(),
  desiredState,
  nodeId: uuid.nullable(),
  nodeEpoch: z.number().int().nullable(),
  releasedIp: ipv4.nullable().optional(),
});

/**
 * Re-placement (ADR-002 transitions 9, 11, drain) and reconcile's repair of a waiting pod. `placement` is the pod's
 * placement count when it was asked for, so each loss gets its own job id (the generation does not change).
 */
export const podPlacementRequestedSchema = podRef.extend({
  placement: z.number().int().nonnegative(),
  reason: z.enum(['VMLost', 'NodeLost', 'Drained', 'Reconcile']),
});

export const networkPolicyChangedSchema = z.object({
  ...tenantScoped,
  networkPolicyId: uuid,
  name: z.string().min(1).max(253),
});

export const tenantChangedSchema = z.object({ ...tenantScoped, status: z.enum(['ACTIVE', 'SUSPENDED']) });

/** `generation` is the node's `desiredVersion` the change produced (also given in full, as a string). */
export const nodeSchedulingChangedSchema = z.object({
  outboxId,
  tenantId: z.null(),
  generation,
  nodeId: uuid,
  cordoned: z.boolean(),
  draining: z.boolean(),
  epoch: z.number().int().nonnegative(),
  desiredVersion: z.string().regex(/^[0-9]{1,19}$/),
});

/** One runtime schema per job name; the worker validates `job.data` with it before acting. */
export const JOB_SCHEMAS = {
  [JobName.PodCreated]: podCreatedSchema,
  [JobName.PodDesiredStateChanged]: podChangedSchema,
  [JobName.PodRestartRequested]: podChangedSchema,
  [JobName.PodDeleted]: podChangedSchema,
  [JobName.PodPlacementRequested]: podPlacementRequestedSchema,
  [JobName.NetworkPolicyCreated]: networkPolicyChangedSchema,
  [JobName.NetworkPolicyUpdated]: networkPolicyChangedSchema,
  [JobName.NetworkPolicyDeleted]: networkPolicyChangedSchema,
  [JobName.TenantQuotaChanged]: tenantChangedSchema,
  [JobName.TenantSuspended]: tenantChangedSchema,
  [JobName.TenantUnsuspended]: tenantChangedSchema,
  [JobName.NodeCordoned]: nodeSchedulingChangedSchema,
  [JobName.NodeUncordoned]: nodeSchedulingChangedSchema,
  [JobName.NodeDrained]: nodeSchedulingChangedSchema,
} as const satisfies Record<JobName, z.ZodTypeAny>;

export type JobPayloads = { [N in JobName]: z.infer<(typeof JOB_SCHEMAS)[N]> };

/** The discriminated union of every job: `name` decides the type of `data`. */
export type Job = { [N in JobName]: { name: N; data: JobPayloads[N] } }[JobName];

export type JobOf<N extends JobName> = Extract<Job, { name: N }>;

/** A worker's handlers: one per job name, or it does not compile. */
export type JobHandlers<Context = void> = {
  [N in JobName]: (data: JobPayloads[N], context: Context) => Promise<void>;
};

const JOB_NAMES: ReadonlySet<string> = new Set(Object.values(JobName));

export const isJobName = (name: string): name is JobName => JOB_NAMES.has(name);

export type ParsedJob = { ok: true; job: Job } | { ok: false; error: string };

/** Validates a job name and its data (the worker does this before acting; the relay before enqueueing). */
export function parseJob(name: string, data: unknown): ParsedJob {
  if (!isJobName(name)) return { ok: false, error: `unknown job name ${JSON.stringify(name)}` };
  const result = JOB_SCHEMAS[name].safeParse(data);
  if (!result.success) {
    const issues = result.error.issues.map((issue) => `${issue.path.join('.') || '(data)'}: ${issue.message}`);
    return { ok: false, error: `invalid ${name} payload: ${issues.join('; ')}` };
  }
  return { ok: true, job: { name, data: result.data } as Job };
}

/** The id of the aggregate a job is about. */
export function aggregateIdOf(job: Job): string {
  const type: AggregateType = JOB_AGGREGATE[job.name];
  switch (type) {
    case 'pod':
      return (job as JobOf<JobName.PodCreated>).data.podId;
    case 'network-policy':
      return (job as JobOf<JobName.NetworkPolicyCreated>).data.networkPolicyId;
    case 'tenant':
      return (job as JobOf<JobName.TenantSuspended>).data.tenantId;
    case 'node':
      return (job as JobOf<JobName.NodeCordoned>).data.nodeId;
  }
}

/** BullMQ refuses custom ids that contain `:` (unless split into exactly 3 parts, a legacy case) or parse as integers. */
export const JOB_ID_SEPARATOR = '_';

/**
 * The deterministic BullMQ job id: `<aggregateType>_<aggregateId>_<generation>_<jobName>`, e.g.
 * `pod_0b6e…_3_pod.desired-state-changed`. A second relay, or a relay retrying after a crash between
 * enqueue and mark, adds the same id, which BullMQ ignores while that job still exists.
 */
export function jobIdFor(job: Job): string {
  // A re-placement keeps the generation; the placement count tells one loss from the next.
  const version =
    job.name === JobName.PodPlacementRequested
      ? `${job.data.generation}.${job.data.placement}`
      : String(job.data.generation);
  const id = [JOB_AGGREGATE[job.name], aggregateIdOf(job), version, job.name].join(JOB_ID_SEPARATOR);
  if (id.includes(':')) throw new Error(`jobIdFor: ${id} contains ':'`);
  return id;
}
