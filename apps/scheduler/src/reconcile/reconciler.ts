import { Job as BullJob } from 'bullmq';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Job } from '@caas/queue-contracts';
import { JobName, QueueName, jobIdFor, jobOptionsFor } from '@caas/queue-contracts';
import { PeriodicLoop, inTransaction } from '../common/pod-changes';
import type { DesiredSetPublisher } from '../nodes/desired-set-publisher';
import type { ControlPlaneQueues } from '../outbox/outbox-relay';

export interface ReconcilerOptions {
  pool: pg.Pool;
  /** The producer side of the control-plane queues (`createControlPlaneQueues`). */
  queues: ControlPlaneQueues;
  publisher: DesiredSetPublisher;
  log: Logger;
  /** RECONCILE_INTERVAL_MS. */
  intervalMs: number;
  /** VM_OVERHEAD_MIB: what each placed pod reserves beyond its memory. */
  vmOverheadMiB: number;
  /** A PENDING pod untouched this long has its placement job checked (default 5 s). */
  pendingAfterMs?: number;
  /** A READY node whose `appliedVersion` stays below `desiredVersion` this long is announced again (default 30 s). */
  appliedLagMs?: number;
  /** PENDING pods checked per pass (oldest first). */
  pendingBatchSize?: number;
  /**
   * Only one replica works per period (a session advisory lock, `pg_try_advisory_lock`); the others skip the pass.
   * Every action is idempotent either way. Default true.
   */
  exclusive?: boolean;
  now?: () => number;
}

export interface ReconcilePass {
  /** Another replica held the lock: nothing was done. */
  skipped: boolean;
  placement: { checked: number; added: number; retried: number; replaced: number };
  desiredSets: { republished: number; reannounced: number };
  capacityRepaired: number;
  quotaRepaired: number;
}

/** The advisory lock key of the reconcile pass. */
export const RECONCILE_LOCK_KEY = 0x6361_6173; // "caas"

/** BullMQ states in which a job will still run. */
const LIVE_STATES = new Set(['waiting', 'delayed', 'active', 'prioritized', 'waiting-children']);

interface PendingPodRow {
  id: string;
  tenantId: string;
  generation: number;
  placement: number;
}

interface NodeVersionRow {
  id: string;
  status: string;
  desiredVersion: string;
  appliedVersion: string;
}

interface CapacityRow {
  id: string;
  allocatedVcpus: number;
  allocatedMemoryMiB: number;
  allocatedPods: number;
  vcpus: number;
  memoryMiB: number;
  pods: number;
}

interface QuotaRow {
  id: string;
  usedPods: number;
  usedVcpus: number;
  usedMemoryMiB: number;
  pods: number;
  vcpus: number;
  memoryMiB: number;
}

const CAPACITY_SQL = `
  SELECT n.id, n."allocatedVcpus", n."allocatedMemoryMiB", n."allocatedPods",
         COALESCE(s.vcpus, 0)::int AS vcpus, COALESCE(s."memoryMiB", 0)::int AS "memoryMiB", COALESCE(s.pods, 0)::int AS pods
  FROM nodes n
  LEFT JOIN (SELECT "nodeId", SUM(vcpus) AS vcpus, SUM("memoryMiB" + $1) AS "memoryMiB", COUNT(*) AS pods
             FROM pods WHERE "nodeId" IS NOT NULL AND ($2::uuid IS NULL OR "nodeId" = $2) GROUP BY "nodeId") s
    ON s."nodeId" = n.id
  WHERE ($2::uuid IS NULL OR n.id = $2)
    AND (n."allocatedVcpus", n."allocatedMemoryMiB", n."allocatedPods")
        IS DISTINCT FROM (COALESCE(s.vcpus, 0)::int, COALESCE(s."memoryMiB", 0)::int, COALESCE(s.pods, 0)::int)`;

const QUOTA_SQL = `
  SELECT t.id, t."usedPods", t."usedVcpus", t."usedMemoryMiB",
         COALESCE(s.pods, 0)::int AS pods, COALESCE(s.vcpus, 0)::int AS vcpus, COALESCE(s."memoryMiB", 0)::int AS "memoryMiB"
  FROM tenants t
  LEFT JOIN (SELECT "tenantId", COUNT(*) AS pods, SUM(vcpus) AS vcpus, SUM("memoryMiB") AS "memoryMiB"
             FROM pods WHERE ($1::uuid IS NULL OR "tenantId" = $1) GROUP BY "tenantId") s
    ON s."tenantId" = t.id
  WHERE ($1::uuid IS NULL OR t.id = $1)
    AND (t."usedPods", t."usedVcpus", t."usedMemoryMiB")
        IS DISTINCT FROM (COALESCE(s.pods, 0)::int, COALESCE(s.vcpus, 0)::int, COALESCE(s."memoryMiB", 0)::int)`;

/**
 * The reconcile loop (ADR-002 "Reconcile", ADR-009 "Re-placement and reconcile"): level-triggered, it repeats what
 * a lost message should have caused. Each pass:
 *
 * - (a) every PENDING pod with desired RUNNING of an ACTIVE tenant, untouched for `pendingAfterMs`, has a placement
 *   job that will still run: if none of its jobs for its current generation (`pod.created`,
 *   `pod.desired-state-changed`, `pod.placement-requested` for its placement count) is live, a
 *   `pod.placement-requested {reason: Reconcile}` is added under its deterministic id (a failed one is retried, a
 *   completed one replaced). The job is recorded as an outbox row marked sent, so its `outboxId` is real.
 * - (b) every node whose desired set in Redis is missing or older than `nodes.desiredVersion` is published (Redis
 *   restarts, lost writes); a READY node that has not applied its version for `appliedLagMs` gets a new version
 *   (`desiredVersion`+1, conditional) and so a new announcement.
 * - (c) node capacity = Σ over its pods of (vcpus, memoryMiB + VM overhead, 1), and (d) tenant usage = Σ over its pods
 *   of (vcpus, memoryMiB, 1): drift is logged as an error with the numbers and repaired under the row's lock (so no
 *   placement, deletion or creation commits between the re-check and the repair).
 */
export class Reconciler {
  private readonly loop: PeriodicLoop;
  /** READY nodes seen behind their desired version: since when, at which version (this replica's view only). */
  private readonly lagging = new Map<string, { version: string; since: number }>();

  constructor(private readonly options: ReconcilerOptions) {
    this.loop = new PeriodicLoop(
      options.intervalMs,
      async () => {
        const pass = await this.runOnce();
        if (!pass.skipped) options.log.debug({ ...pass }, 'reconcile pass');
      },
      options.log,
      'reconcile',
    );
  }

  start(): void {
    this.loop.start();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
  }

  async runOnce(): Promise<ReconcilePass> {
    const pass: ReconcilePass = {
      skipped: false,
      placement: { checked: 0, added: 0, retried: 0, replaced: 0 },
      desiredSets: { republished: 0, reannounced: 0 },
      capacityRepaired: 0,
      quotaRepaired: 0,
    };
    let lockClient: pg.PoolClient | undefined;
    if (this.options.exclusive ?? true) {
      lockClient = await this.options.pool.connect();
      const { rows } = await lockClient.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [
        RECONCILE_LOCK_KEY.toString(),
      ]);
      if (!rows[0]?.locked) {
        lockClient.release();
        return { ...pass, skipped: true };
      }
    }
    try {
      // Each part on its own: one failing does not keep the others from running.
      await this.part('placement jobs', () => this.ensurePlacementJobs(pass));
      await this.part('desired sets', () => this.repairDesiredSets(pass));
      await this.part('capacity invariant', () => this.repairCapacity(pass));
      await this.part('quota invariant', () => this.repairQuota(pass));
    } finally {
      if (lockClient !== undefined) {
        const held = lockClient;
        await held
          .query('SELECT pg_advisory_unlock($1)', [RECONCILE_LOCK_KEY.toString()])
          .then(() => held.release())
          // A connection that cannot unlock is destroyed, which releases the session lock.
          .catch((error: unknown) => held.release(error instanceof Error ? error : true));
      }
    }
    return pass;
  }

  private async part(name: string, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (error) {
      this.options.log.error({ err: error, part: name }, 'reconcile part failed; retried next pass');
    }
  }

  // ─────────────────────────────────────── (a) placement jobs ───────────────────────────────────────

  private async ensurePlacementJobs(pass: ReconcilePass): Promise<void> {
    const { rows } = await this.options.pool.query<PendingPodRow>(
      `SELECT p.id, p."tenantId", p.generation, p.placement
       FROM pods p JOIN tenants t ON t.id = p."tenantId" AND t.status = 'ACTIVE'
       WHERE p.phase = 'PENDING' AND p."desiredState" = 'RUNNING' AND p."nodeId" IS NULL
         AND p."updatedAt" < now() - $1 * interval '1 millisecond'
       ORDER BY p."updatedAt" LIMIT $2`,
      [this.options.pendingAfterMs ?? 5_000, this.options.pendingBatchSize ?? 1_000],
    );
    const queue = this.options.queues[QueueName.Placement];
    for (const pod of rows) {
      pass.placement.checked++;
      const job = placementJob(pod, '1');
      const id = jobIdFor(job);
      const others = [JobName.PodCreated, JobName.PodDesiredStateChanged].map((name) =>
        jobIdFor({ name, data: { podId: pod.id, generation: pod.generation } } as Job),
      );
      const [state, ...otherStates] = await Promise.all([id, ...others].map((jobId) => queue.getJobState(jobId)));
      if (LIVE_STATES.has(state) || otherStates.some((s) => LIVE_STATES.has(s))) continue;
      if (state === 'failed') {
        const failed = await BullJob.fromId(queue, id);
        if (failed !== undefined) {
          await failed.retry('failed');
          pass.placement.retried++;
          this.options.log.warn({ podId: pod.id, jobId: id }, 'reconcile: failed placement job retried');
          continue;
        }
      }
      if (state === 'completed') {
        // It ran, yet the pod still waits (it was skipped, say): a new run needs the id free again.
        await queue.remove(id);
        pass.placement.replaced++;
      }
      await this.addPlacementJob(pod);
      pass.placement.added++;
      this.options.log.warn(
        { podId: pod.id, generation: pod.generation, placement: pod.placement, previous: state },
        'reconcile: a waiting pod had no live placement job; one was added',
      );
    }
  }

  /** Records the request as an outbox row marked sent (its id travels in the job) and adds the job in one go. */
  private async addPlacementJob(pod: PendingPodRow): Promise<void> {
    await inTransaction(this.options.pool, async (client) => {
      const { rows } = await client.query<{ id: string }>(
        `INSERT INTO outbox ("aggregateType", "aggregateId", "tenantId", generation, kind, payload, "sentAt", attempts)
         VALUES ('pod', $1, $2, $3, $4, $5, now(), 1) RETURNING id::text AS id`,
        [
          pod.id,
          pod.tenantId,
          pod.generation,
          JobName.PodPlacementRequested,
          JSON.stringify({ placement: pod.placement, reason: 'Reconcile' }),
        ],
      );
      const job = placementJob(pod, rows[0].id);
      await this.options.queues[QueueName.Placement].add(job.name, job.data, jobOptionsFor(job));
    });
  }

  // ─────────────────────────────────────── (b) desired sets ───────────────────────────────────────

  private async repairDesiredSets(pass: ReconcilePass): Promise<void> {
    const { publisher, pool, log } = this.options;
    const now = this.options.now?.() ?? Date.now();
    const { rows } = await pool.query<NodeVersionRow>(
      `SELECT id, status, "desiredVersion"::text AS "desiredVersion", "appliedVersion"::text AS "appliedVersion"
       FROM nodes ORDER BY id`,
    );
    const stored = await Promise.all(rows.map((node) => publisher.storedVersion(node.id)));
    const stale: string[] = [];
    const reannounce: NodeVersionRow[] = [];
    const seen = new Set<string>();
    for (const [i, node] of rows.entries()) {
      seen.add(node.id);
      const version = stored[i];
      if (version === null || BigInt(version) < BigInt(node.desiredVersion)) {
        stale.push(node.id);
        log.warn(
          { nodeId: node.id, stored: version, desiredVersion: node.desiredVersion },
          'reconcile: desired set missing or older in Redis; republished',
        );
        continue;
      }
      if (node.status !== 'READY' || BigInt(node.appliedVersion) >= BigInt(node.desiredVersion)) {
        this.lagging.delete(node.id);
        continue;
      }
      const lag = this.lagging.get(node.id);
      if (lag?.version !== node.desiredVersion) {
        this.lagging.set(node.id, { version: node.desiredVersion, since: now });
      } else if (now - lag.since >= (this.options.appliedLagMs ?? 30_000)) {
        reannounce.push(node);
      }
    }
    for (const id of this.lagging.keys()) if (!seen.has(id)) this.lagging.delete(id);
    // A new version is the way to announce again: announcements are deduplicated per version.
    for (const node of reannounce) {
      const bumped = await pool.query(
        `UPDATE nodes SET "desiredVersion" = "desiredVersion" + 1, "updatedAt" = now()
         WHERE id = $1 AND status = 'READY' AND "desiredVersion" = $2::bigint AND "appliedVersion" < $2::bigint`,
        [node.id, node.desiredVersion],
      );
      this.lagging.delete(node.id);
      if (bumped.rowCount === 1) {
        stale.push(node.id);
        pass.desiredSets.reannounced++;
        log.warn(
          { nodeId: node.id, desiredVersion: node.desiredVersion, appliedVersion: node.appliedVersion },
          'reconcile: node has not applied its desired set; announced again under a new version',
        );
      }
    }
    pass.desiredSets.republished = stale.length - pass.desiredSets.reannounced;
    await publisher.publishMany(stale);
  }

  // ─────────────────────────────────────── (c) capacity, (d) quota ───────────────────────────────────────

  private async repairCapacity(pass: ReconcilePass): Promise<void> {
    const overhead = this.options.vmOverheadMiB;
    const drifted = await this.options.pool.query<CapacityRow>(CAPACITY_SQL, [overhead, null]);
    for (const candidate of drifted.rows) {
      const repaired = await inTransaction(this.options.pool, async (client) => {
        // The node's row lock first: every change of a pod's nodeId updates this row in its transaction, so once
        // we hold it the sums read next are exact until we commit.
        await client.query('SELECT 1 FROM nodes WHERE id = $1 FOR UPDATE', [candidate.id]);
        const { rows } = await client.query<CapacityRow>(CAPACITY_SQL, [overhead, candidate.id]);
        const row = rows[0];
        if (row === undefined) return false;
        await client.query(
          `UPDATE nodes SET "allocatedVcpus" = $2, "allocatedMemoryMiB" = $3, "allocatedPods" = $4, "updatedAt" = now()
           WHERE id = $1`,
          [row.id, row.vcpus, row.memoryMiB, row.pods],
        );
        this.options.log.error(
          {
            nodeId: row.id,
            allocated: { vcpus: row.allocatedVcpus, memoryMiB: row.allocatedMemoryMiB, pods: row.allocatedPods },
            placedPods: { vcpus: row.vcpus, memoryMiB: row.memoryMiB, pods: row.pods },
          },
          'capacity invariant broken: node allocation differs from its pods; repaired',
        );
        return true;
      });
      if (repaired) pass.capacityRepaired++;
    }
  }

  private async repairQuota(pass: ReconcilePass): Promise<void> {
    const drifted = await this.options.pool.query<QuotaRow>(QUOTA_SQL, [null]);
    for (const candidate of drifted.rows) {
      const repaired = await inTransaction(this.options.pool, async (client) => {
        // Quota changes take the tenant's row lock (the conditional UPDATEs of create/delete): hold it first.
        await client.query('SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE', [candidate.id]);
        const { rows } = await client.query<QuotaRow>(QUOTA_SQL, [candidate.id]);
        const row = rows[0];
        if (row === undefined) return false;
        await client.query(
          `UPDATE tenants SET "usedPods" = $2, "usedVcpus" = $3, "usedMemoryMiB" = $4, "updatedAt" = now() WHERE id = $1`,
          [row.id, row.pods, row.vcpus, row.memoryMiB],
        );
        this.options.log.error(
          {
            tenantId: row.id,
            used: { pods: row.usedPods, vcpus: row.usedVcpus, memoryMiB: row.usedMemoryMiB },
            pods: { pods: row.pods, vcpus: row.vcpus, memoryMiB: row.memoryMiB },
          },
          'quota invariant broken: tenant usage differs from its pods; repaired',
        );
        return true;
      });
      if (repaired) pass.quotaRepaired++;
    }
  }
}

function placementJob(pod: PendingPodRow, outboxId: string): Job {
  return {
    name: JobName.PodPlacementRequested,
    data: {
      outboxId,
      tenantId: pod.tenantId,
      generation: pod.generation,
      podId: pod.id,
      placement: pod.placement,
      reason: 'Reconcile',
    },
  };
}
