import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { PodEventMessage } from '@caas/log-stream-contract';
import type { JobPayloads } from '@caas/queue-contracts';
import type { JobName } from '@caas/queue-contracts';
import type { DesiredSetPublisher } from '../nodes/desired-set-publisher';
import { Rollback, inTransactionOr, insertPodEvent, publishPodEvents } from '../common/pod-changes';

export interface TenantSuspenderOptions {
  pool: pg.Pool;
  /** A producer connection: pod events are published on it. */
  redis: Redis;
  publisher: DesiredSetPublisher;
  log: Logger;
}

export interface SuspensionResult {
  /** `not-suspended`: the tenant is gone or ACTIVE again; nothing was done. */
  outcome: 'stopped' | 'not-suspended';
  /** PENDING pods that went straight to STOPPED (as transition 12). */
  stopped: number;
  /** Placed pods now desired STOPPED, their nodes told (as transition 13; ingest then applies 14). */
  stopping: number;
  nodes: string[];
}

interface PodRow {
  id: string;
  name: string;
  phase: string;
  generation: number;
  nodeId: string | null;
}

/**
 * Handles `tenant.suspended` (ADR-002 "suspendTenant"): in one transaction that holds the tenant row (FOR SHARE, so an
 * `unsuspendTenant` waits for it and a handler running after one sees ACTIVE), every pod of the tenant with desired
 * RUNNING that has not finished gets desired STOPPED, generation+1 and `reason = TenantSuspended`: PENDING pods go
 * straight to STOPPED, placed ones bump their node's `desiredVersion` (published after the commit; the node shuts
 * the VM down and ingest records STOPPED). Pods, IPs and quota are kept; DELETING pods finish deleting.
 *
 * Idempotent on the tenant's generation: the work is level-triggered on the tenant's current state. A job whose
 * tenant is ACTIVE again (or gone) does nothing; one whose tenant is still SUSPENDED stops whatever still has desired
 * RUNNING — even when the tenant's generation moved on (a quota change bumps it too, and the tenant is still
 * suspended), and a second run finds nothing left to stop.
 */
export class TenantSuspender {
  constructor(private readonly options: TenantSuspenderOptions) {}

  /** The handler for `PlacementWorkerOptions.handlers[JobName.TenantSuspended]`. */
  readonly handle = async (data: JobPayloads[JobName.TenantSuspended]): Promise<void> => {
    await this.suspend(data.tenantId, data.generation);
  };

  async suspend(tenantId: string, generation: number): Promise<SuspensionResult> {
    const { log } = this.options;
    const events: PodEventMessage[] = [];
    const nothing: SuspensionResult = { outcome: 'not-suspended', stopped: 0, stopping: 0, nodes: [] };
    const result = await inTransactionOr<SuspensionResult>(this.options.pool, async (client) => {
      const tenant = await client.query<{ status: string; generation: number }>(
        `SELECT status, generation FROM tenants WHERE id = $1 FOR SHARE`,
        [tenantId],
      );
      const row = tenant.rows[0];
      if (row?.status !== 'SUSPENDED') throw new Rollback(nothing);
      if (row.generation > generation) {
        log.info(
          { tenantId, generation, tenantGeneration: row.generation },
          'suspension job older than the tenant, which is still suspended: stopping its pods anyway',
        );
      }
      // Nodes before pods, the order placement and the node monitor lock them in (no deadlock with them). No pod of a
      // suspended tenant is placed any more (placement checks the status), so the set read here does not grow.
      const placed = await client.query<{ nodeId: string }>(
        `SELECT DISTINCT "nodeId" FROM pods
         WHERE "tenantId" = $1 AND "desiredState" = 'RUNNING' AND "nodeId" IS NOT NULL ORDER BY "nodeId"`,
        [tenantId],
      );
      const bumped = new Set(placed.rows.map((r) => r.nodeId));
      if (bumped.size > 0) {
        await client.query(
          `UPDATE nodes SET "desiredVersion" = "desiredVersion" + 1, "updatedAt" = now() WHERE id = ANY($1::uuid[])`,
          [[...bumped]],
        );
      }
      const pods = await client.query<PodRow>(
        `SELECT id, name, phase, generation, "nodeId" FROM pods
         WHERE "tenantId" = $1 AND "desiredState" = 'RUNNING' AND phase IN ('PENDING', 'SCHEDULED', 'STARTING', 'RUNNING')
         ORDER BY id FOR UPDATE`,
        [tenantId],
      );
      const out: SuspensionResult = { outcome: 'stopped', stopped: 0, stopping: 0, nodes: [] };
      const nodes = new Set<string>();
      for (const pod of pods.rows) {
        const pending = pod.phase === 'PENDING' && pod.nodeId === null;
        const message = pending
          ? `Tenant suspended: pod ${pod.name} stopped before it was placed; it keeps its address and quota.`
          : `Tenant suspended: pod ${pod.name} is being stopped by its node; it keeps its address and quota.`;
        await client.query(
          `UPDATE pods SET "desiredState" = 'STOPPED', generation = generation + 1, reason = 'TenantSuspended',
                  message = $2, phase = CASE WHEN $3 THEN 'STOPPED'::"PodPhase" ELSE phase END,
                  "placeAfter" = CASE WHEN $3 THEN NULL ELSE "placeAfter" END, "updatedAt" = now()
           WHERE id = $1`,
          [pod.id, message, pending],
        );
        if (pending) out.stopped++;
        else {
          out.stopping++;
          if (pod.nodeId !== null) nodes.add(pod.nodeId);
        }
        events.push(
          await insertPodEvent(client, {
            tenantId,
            podId: pod.id,
            nodeId: pod.nodeId,
            type: 'NORMAL',
            reason: 'TenantSuspended',
            message,
          }),
        );
      }
      out.nodes = [...nodes].sort();
      const late = out.nodes.filter((id) => !bumped.has(id));
      if (late.length > 0) {
        await client.query(
          `UPDATE nodes SET "desiredVersion" = "desiredVersion" + 1, "updatedAt" = now() WHERE id = ANY($1::uuid[])`,
          [late],
        );
      }
      return out;
    });
    if (result.outcome === 'not-suspended') {
      log.info({ tenantId, generation }, 'suspension skipped: the tenant is gone or ACTIVE');
      return result;
    }
    await this.options.publisher.publishMany(result.nodes);
    await publishPodEvents(this.options.redis, events, log);
    log.info({ tenantId, generation, ...result }, 'tenant suspended: its pods stopped or stopping');
    return result;
  }
}
