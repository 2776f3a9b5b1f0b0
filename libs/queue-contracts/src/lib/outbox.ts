import type { AggregateType, Job } from './jobs';
import { JOB_AGGREGATE, aggregateIdField, isJobName, parseJob } from './jobs';

/** The columns of an `outbox` row the relay reads (`id` as PostgreSQL returns a BIGINT: a string). */
export interface OutboxRow {
  id: string;
  aggregateType: string;
  aggregateId: string;
  tenantId: string | null;
  generation: number;
  kind: string;
  payload: unknown;
}

export type OutboxJob = { ok: true; job: Job } | { ok: false; error: string };

/**
 * The job an outbox row announces, or why it announces none. The job's data is the row's payload plus the
 * envelope taken from the row's own columns (which win over payload fields of the same name): `outboxId`,
 * `tenantId`, `generation` and the aggregate id under its field (`podId`, `networkPolicyId`, `tenantId`,
 * `nodeId`). A refusal is permanent for that row: the relay dead-letters it.
 */
export function jobFromOutboxRow(row: OutboxRow): OutboxJob {
  if (!isJobName(row.kind)) return { ok: false, error: `unknown outbox kind ${JSON.stringify(row.kind)}` };
  const expected: AggregateType = JOB_AGGREGATE[row.kind];
  if (row.aggregateType !== expected) {
    return { ok: false, error: `${row.kind} announces a ${expected}, not a ${JSON.stringify(row.aggregateType)}` };
  }
  if (expected === 'tenant' && row.tenantId !== row.aggregateId) {
    return {
      ok: false,
      error: `${row.kind}: tenantId ${String(row.tenantId)} is not the aggregate ${row.aggregateId}`,
    };
  }
  if (row.payload === null || typeof row.payload !== 'object' || Array.isArray(row.payload)) {
    return { ok: false, error: `${row.kind}: payload is not a JSON object` };
  }
  return parseJob(row.kind, {
    ...row.payload,
    outboxId: row.id,
    tenantId: row.tenantId,
    generation: row.generation,
    [aggregateIdField(expected)]: row.aggregateId,
  });
}
