import { z } from 'zod';
import { acceleratorSchema, nodeCapacitySchema } from './node-contract';

/**
 * What a node appends to its status stream (ADR-009): heartbeats and pod reports, one JSON document per entry
 * (field `STATUS_FIELD`). Everything here is untrusted input: the scheduler validates it, takes the node id from
 * the stream key, and accepts a pod report only for a pod placed on that node under the same epoch and placement.
 */

const uuid = z.string().uuid();
const timestamp = z.string().datetime();
const shortText = (max: number) => z.string().max(max);

/**
 * The phase of a pod as the node sees it. `STOPPED`: the VM is gone because the desired set said STOPPED or
 * DELETED. `LOST`: the VM died without being asked (QEMU gone, guest panic). `FAILED`: it could not start (image,
 * command) or its containers finished unsuccessfully under the restart policy. `SUCCEEDED`: all exited 0.
 */
export const reportedPodPhaseSchema = z.enum(['STARTING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'STOPPED', 'LOST']);
export type ReportedPodPhase = z.infer<typeof reportedPodPhaseSchema>;

export const reportedContainerSchema = z.object({
  name: z.string().min(1).max(63),
  phase: z.enum(['WAITING', 'RUNNING', 'EXITED']),
  exitCode: z.number().int().min(0).max(255).nullable(),
  signal: shortText(16).nullable(),
  reason: shortText(100).nullable(),
  restartCount: z.number().int().nonnegative(),
  startedAt: timestamp.nullable(),
  finishedAt: timestamp.nullable(),
});
export type ReportedContainer = z.infer<typeof reportedContainerSchema>;

export const podStatusSchema = z.object({
  podId: uuid,
  /** The pod generation the node has converged on. */
  generation: z.number().int().positive(),
  /** The placement (from the desired set) this VM belongs to. */
  placement: z.number().int().positive(),
  phase: reportedPodPhaseSchema,
  reason: shortText(100).nullable(),
  message: shortText(1000).nullable(),
  accelerator: acceleratorSchema.nullable(),
  /** Image reference → digest, at the first pull. */
  imageDigests: z.record(z.string().max(200)).refine((r) => Object.keys(r).length <= 64, 'at most 64 images'),
  containers: z.array(reportedContainerSchema).max(64),
});
export type PodStatus = z.infer<typeof podStatusSchema>;

export const nodeEventSchema = z.object({
  type: z.enum(['NORMAL', 'WARNING']),
  /** CamelCase, machine-readable: `Pulling`, `Pulled`, `Started`, `BackOff`, `OOMKilled`, … */
  reason: z.string().regex(/^[A-Z][A-Za-z0-9]{0,99}$/),
  message: shortText(2000),
  at: timestamp,
});
export type NodeEvent = z.infer<typeof nodeEventSchema>;

export const nodeUsageSchema = z.object({
  vcpus: z.number().int().nonnegative(),
  memoryMiB: z.number().int().nonnegative(),
  pods: z.number().int().nonnegative(),
  diskUsedBytes: z.number().int().nonnegative(),
  imageCacheBytes: z.number().int().nonnegative(),
});
export type NodeUsage = z.infer<typeof nodeUsageSchema>;

export const heartbeatSchema = z.object({
  kind: z.literal('heartbeat'),
  /** The epoch the node believes it has; the node is READY only when it matches. */
  epoch: z.number().int().positive(),
  /** The desired-set version the node has converged on. */
  appliedVersion: z.string().regex(/^[0-9]{1,19}$/),
  sentAt: timestamp,
  capacity: nodeCapacitySchema,
  usage: nodeUsageSchema,
  diskPressure: z.boolean(),
  accelerator: acceleratorSchema.nullable(),
  /**
   * Every pod the node runs or still tears down (level-triggered: lost pod reports are repaired by this), and at
   * least every pod of the set named by `appliedVersion`: a placed pod missing from a heartbeat whose epoch and
   * applied version are the node's current ones is taken as a VM lost without a report.
   */
  pods: z.array(podStatusSchema).max(10_000),
});
export type Heartbeat = z.infer<typeof heartbeatSchema>;

export const podReportSchema = z.object({
  kind: z.literal('pod'),
  epoch: z.number().int().positive(),
  status: podStatusSchema,
  /** What happened since the last report (edge-triggered: may be lost; the phases above are not). */
  events: z.array(nodeEventSchema).max(100),
});
export type PodReport = z.infer<typeof podReportSchema>;

/** One nftables counter's running totals since the ruleset declared it (counters survive a policy re-apply). */
export const counterValueSchema = z.object({
  packets: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
});

/** Counter names are the compiler's (`np_<policy>_in_<rule>`, `deny_<policy>_<rule>`, `isolated_in_drop`, …). */
const counterName = z.string().regex(/^[a-z0-9_-]{1,120}$/);

/**
 * The per-rule counters of the tenants' compiled policies on this node (ADR-006, ADR-004), sent every few seconds
 * (level-triggered: each report carries the node's current totals, so a lost one is repaired by the next). A tenant
 * whose namespace is gone from the node is absent: its totals on this node are dropped.
 */
export const policyCountersReportSchema = z.object({
  kind: z.literal('policyCounters'),
  epoch: z.number().int().positive(),
  sentAt: timestamp,
  tenants: z
    .array(
      z.object({
        tenantId: z.string().uuid(),
        counters: z.record(counterName, counterValueSchema),
      }),
    )
    .max(10_000),
});
export type PolicyCountersReport = z.infer<typeof policyCountersReportSchema>;

export const nodeReportSchema = z.discriminatedUnion('kind', [
  heartbeatSchema,
  podReportSchema,
  policyCountersReportSchema,
]);
export type NodeReport = z.infer<typeof nodeReportSchema>;

/** Reports above this size are refused without parsing. */
export const MAX_REPORT_BYTES = 4 * 1024 * 1024;

export type ParsedReport = { ok: true; report: NodeReport } | { ok: false; error: string };

export function parseNodeReport(json: string): ParsedReport {
  if (json.length > MAX_REPORT_BYTES) return { ok: false, error: `report larger than ${MAX_REPORT_BYTES} bytes` };
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return { ok: false, error: 'report is not JSON' };
  }
  const result = nodeReportSchema.safeParse(value);
  if (!result.success) {
    const issues = result.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || '(report)'}: ${i.message}`);
    return { ok: false, error: `invalid report: ${issues.join('; ')}` };
  }
  return { ok: true, report: result.data };
}
