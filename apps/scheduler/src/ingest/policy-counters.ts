import type pg from 'pg';
import type { PolicyCountersReport } from '@caas/queue-contracts';

/**
 * Counters one report may carry at most (every tenant, every name): above this the report is refused whole
 * (the report's byte limit, MAX_REPORT_BYTES, already bounds it to roughly 60,000; this bounds the statement).
 */
export const MAX_COUNTERS_PER_REPORT = 100_000;

/** The rows of one report, as parallel arrays for UNNEST. */
export interface CounterRows {
  tenantIds: string[];
  names: string[];
  packets: string[];
  bytes: string[];
}

/**
 * Flattens a report into rows. A tenant listed twice counts once (its last entry); a value beyond
 * Number.MAX_SAFE_INTEGER (not an exact integer any more, and able to overflow BIGINT) is skipped.
 * Returns null when the report carries more than MAX_COUNTERS_PER_REPORT counters.
 */
export function counterRows(report: PolicyCountersReport): CounterRows | null {
  const byTenant = new Map<string, PolicyCountersReport['tenants'][number]['counters']>();
  for (const tenant of report.tenants) byTenant.set(tenant.tenantId, tenant.counters);
  const rows: CounterRows = { tenantIds: [], names: [], packets: [], bytes: [] };
  for (const [tenantId, counters] of byTenant) {
    for (const [name, value] of Object.entries(counters)) {
      if (rows.names.length >= MAX_COUNTERS_PER_REPORT) return null;
      if (!Number.isSafeInteger(value.packets) || !Number.isSafeInteger(value.bytes)) continue;
      rows.tenantIds.push(tenantId);
      rows.names.push(name);
      rows.packets.push(String(value.packets));
      rows.bytes.push(String(value.bytes));
    }
  }
  return rows;
}

export interface StoreResult {
  /** False when the node is unknown or the report's epoch is not the node's current one: nothing was written. */
  current: boolean;
  /** Rows inserted or replaced. */
  written: number;
  /** Rows of this node removed: tenants (or counters) the node no longer reports. */
  removed: number;
}

/**
 * One statement per report: the node's row decides (current epoch only); each reported counter of an existing
 * tenant is upserted unless the stored row comes from a newer report (a replayed stream entry); every other row of
 * this node older than the report (a tenant or counter the node no longer reports) is deleted. The DELETE never
 * touches a row the INSERT writes (it excludes the reported pairs), so no row is modified twice in the statement.
 */
const STORE_SQL = `
  WITH node AS (
    SELECT id FROM nodes WHERE id = $1 AND epoch = $2
  ), reported AS (
    SELECT * FROM unnest($3::uuid[], $4::text[], $5::bigint[], $6::bigint[]) AS c("tenantId", name, packets, bytes)
  ), written AS (
    INSERT INTO policy_counters ("nodeId", "tenantId", name, packets, bytes, "sentAt", "updatedAt")
    SELECT node.id, c."tenantId", c.name, c.packets, c.bytes, $7::timestamptz, now()
      FROM reported c CROSS JOIN node JOIN tenants t ON t.id = c."tenantId"
    ON CONFLICT ("nodeId", "tenantId", name) DO UPDATE
       SET packets = EXCLUDED.packets, bytes = EXCLUDED.bytes, "sentAt" = EXCLUDED."sentAt", "updatedAt" = now()
     WHERE policy_counters."sentAt" <= EXCLUDED."sentAt"
    RETURNING 1
  ), removed AS (
    DELETE FROM policy_counters p USING node
     WHERE p."nodeId" = node.id AND p."sentAt" < $7::timestamptz
       AND NOT EXISTS (SELECT 1 FROM reported c WHERE c."tenantId" = p."tenantId" AND c.name = p.name)
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM node)::int AS current, (SELECT count(*) FROM written)::int AS written,
         (SELECT count(*) FROM removed)::int AS removed`;

/** Stores one node's `policyCounters` report (the node is the stream's: the caller takes it from the key). */
export async function storePolicyCounters(
  pool: pg.Pool,
  nodeId: string,
  report: PolicyCountersReport,
  rows: CounterRows,
): Promise<StoreResult> {
  const { rows: result } = await pool.query<{ current: number; written: number; removed: number }>(STORE_SQL, [
    nodeId,
    report.epoch,
    rows.tenantIds,
    rows.names,
    rows.packets,
    rows.bytes,
    report.sentAt,
  ]);
  const row = result[0];
  return { current: (row?.current ?? 0) > 0, written: row?.written ?? 0, removed: row?.removed ?? 0 };
}
