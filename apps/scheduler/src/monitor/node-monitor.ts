import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { PodEventMessage } from '@caas/log-stream-contract';
import { JobName, nodeKeys } from '@caas/queue-contracts';
import type { DesiredSetPublisher } from '../nodes/desired-set-publisher';
import {
  PeriodicLoop,
  Rollback,
  inTransactionOr,
  insertPodEvent,
  publishPodEvents,
  releaseQuota,
} from '../common/pod-changes';
import type { Queryable } from '../common/pod-changes';

export interface NodeMonitorOptions {
  pool: pg.Pool;
  /** A producer connection: pod events are published on it. */
  redis: Redis;
  publisher: DesiredSetPublisher;
  log: Logger;
  /** NODE_MONITOR_INTERVAL_MS. */
  intervalMs: number;
  /** REPLACE_BACKOFF_BASE_MS / REPLACE_BACKOFF_MAX_MS: re-placement backoff after the second and later losses. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Expired nodes handled per pass (the rest in the next pass). */
  batchSize?: number;
  /**
   * Before declaring a node lost, look at its status stream: an entry written within `graceMs` (by Redis's clock)
   * means the node is alive and status ingest is behind, so the node is left alone this pass. Without it, a
   * backlog of unread heartbeats (a slow or overloaded ingest) would make healthy nodes lose their pods.
   */
  liveness?: { prefix: string; graceMs: number };
}

/** What one node's loss did. */
export interface NodeLoss {
  nodeId: string;
  name: string;
  /** The node's new epoch. */
  epoch: number;
  replaced: number;
  failed: number;
  stopped: number;
  deleted: number;
}

export interface NodeMonitorPass {
  /** Expired READY nodes seen. */
  expired: number;
  /** Nodes this monitor declared lost (others were taken by another replica or renewed meanwhile). */
  lost: NodeLoss[];
}

interface PodRow {
  id: string;
  tenantId: string;
  name: string;
  phase: string;
  desiredState: string;
  restartPolicy: string;
  generation: number;
  placement: number;
  nodeEpoch: number | null;
  vcpus: number;
  memoryMiB: number;
  ip: string | null;
}

const LIVE_PHASES = new Set(['PENDING', 'SCHEDULED', 'STARTING', 'RUNNING']);

/**
 * The node monitor (ADR-002 "Node loss and epochs", ADR-009 "Leases, epochs, fencing"). Every period it looks for
 * READY nodes whose lease has expired (heartbeats renew `leaseExpiresAt = now() + grace`; REGISTERED nodes never
 * had pods and never expire) and handles each in ONE transaction that starts with a conditional UPDATE of the
 * node: of several replicas racing, only the one whose UPDATE returns the row goes on, the others change nothing.
 * In that transaction the node becomes NOT_READY with `epoch`+1, zero allocation and `desiredVersion`+1, and each
 * of its pods gets transition 11 (re-placed: PENDING with an outbox `pod.placement-requested`; `NEVER`: FAILED),
 * 14 (desired STOPPED: STOPPED) or 18 (DELETING: removed, quota released, outbox `pod.deleted`), with a NodeLost
 * event each. After the commit the node's (now empty) set is published under the new epoch, so a returning agent
 * kills what it no longer owns, and the pod events are published.
 */
export class NodeMonitor {
  private readonly loop: PeriodicLoop;

  constructor(private readonly options: NodeMonitorOptions) {
    this.loop = new PeriodicLoop(
      options.intervalMs,
      async () => {
        await this.runOnce();
      },
      options.log,
      'node monitor',
    );
  }

  start(): void {
    this.loop.start();
  }

  /** Stops the loop and waits for the pass under way. */
  async stop(): Promise<void> {
    await this.loop.stop();
  }

  /** One pass: every expired READY node is tried once. */
  async runOnce(): Promise<NodeMonitorPass> {
    const { rows } = await this.options.pool.query<{ id: string }>(
      `SELECT id FROM nodes WHERE status = 'READY' AND "leaseExpiresAt" < now() ORDER BY "leaseExpiresAt" LIMIT $1`,
      [this.options.batchSize ?? 500],
    );
    const lost: NodeLoss[] = [];
    const alive = await this.recentlyHeard(rows.map((r) => r.id));
    for (const { id } of rows) {
      if (alive.has(id)) continue;
      try {
        const loss = await this.declareLost(id);
        if (loss !== null) lost.push(loss);
      } catch (error) {
        this.options.log.error({ err: error, nodeId: id }, 'declaring a node lost failed; retried next pass');
      }
    }
    return { expired: rows.length, lost };
  }

  /** The nodes among `nodeIds` whose status stream has an entry younger than the grace period. */
  private async recentlyHeard(nodeIds: string[]): Promise<Set<string>> {
    const liveness = this.options.liveness;
    if (liveness === undefined || nodeIds.length === 0) return new Set();
    const pipeline = this.options.redis.pipeline().time();
    for (const id of nodeIds) pipeline.xrevrange(nodeKeys(id, liveness.prefix).status, '+', '-', 'COUNT', 1);
    const results = (await pipeline.exec()) ?? [];
    const [timeError, time] = results[0] ?? [];
    if (timeError || !Array.isArray(time)) return new Set();
    const nowMs = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
    const alive = new Set<string>();
    nodeIds.forEach((id, i) => {
      const [error, entries] = results[i + 1] ?? [];
      const last = !error && Array.isArray(entries) ? (entries[0] as [string, string[]] | undefined) : undefined;
      const writtenMs = last === undefined ? NaN : Number(last[0].split('-')[0]);
      if (nowMs - writtenMs < liveness.graceMs) alive.add(id);
    });
    if (alive.size > 0) {
      this.options.log.warn(
        { nodes: alive.size },
        'leases expired in PostgreSQL but the nodes reported recently: status ingest is behind; not declared lost',
      );
    }
    return alive;
  }

  /** Declares the node lost if its lease is still expired and nobody did so yet; null when it changed nothing. */
  async declareLost(nodeId: string): Promise<NodeLoss | null> {
    const events: PodEventMessage[] = [];
    const loss = await inTransactionOr<NodeLoss | null>(this.options.pool, async (client) => {
      const node = await client.query<{ name: string; epoch: number }>(
        `UPDATE nodes SET status = 'NOT_READY', epoch = epoch + 1, "allocatedVcpus" = 0, "allocatedMemoryMiB" = 0,
                "allocatedPods" = 0, "desiredVersion" = "desiredVersion" + 1, "updatedAt" = now()
         WHERE id = $1 AND status = 'READY' AND "leaseExpiresAt" < now()
         RETURNING name, epoch`,
        [nodeId],
      );
      const won = node.rows[0];
      if (!won) throw new Rollback(null);
      const result: NodeLoss = {
        nodeId,
        name: won.name,
        epoch: won.epoch,
        replaced: 0,
        failed: 0,
        stopped: 0,
        deleted: 0,
      };
      const pods = await client.query<PodRow>(
        `SELECT id, "tenantId", name, phase, "desiredState", "restartPolicy", generation, placement, "nodeEpoch",
                vcpus, "memoryMiB", host(ip) AS ip
         FROM pods WHERE "nodeId" = $1 ORDER BY id FOR UPDATE`,
        [nodeId],
      );
      for (const pod of pods.rows) {
        const event = await this.applyToPod(client, pod, nodeId, won.name, result);
        events.push(event);
      }
      const summary =
        `Node ${won.name} missed its lease; NOT_READY under epoch ${won.epoch}: ${result.replaced} pod(s) to be ` +
        `re-placed, ${result.failed} failed, ${result.stopped} stopped, ${result.deleted} deleted.`;
      await client.query(
        `INSERT INTO events ("nodeId", type, reason, message) VALUES ($1, 'WARNING', 'NodeLost', $2)`,
        [nodeId, summary],
      );
      return result;
    });
    if (loss === null) return null;
    this.options.log.warn({ ...loss }, 'node lost: NOT_READY, epoch bumped, its pods moved on');
    await this.options.publisher.publishMany([nodeId]);
    await publishPodEvents(this.options.redis, events, this.options.log);
    return loss;
  }

  /** ADR-002 transition 11, 14 or 18 for one pod of the lost node (the node row is already locked and updated). */
  private async applyToPod(
    client: Queryable,
    pod: PodRow,
    nodeId: string,
    nodeName: string,
    result: NodeLoss,
  ): Promise<PodEventMessage> {
    const event = (message: string, linkPod = true) =>
      insertPodEvent(client, {
        tenantId: pod.tenantId,
        podId: pod.id,
        nodeId,
        type: 'WARNING',
        reason: 'NodeLost',
        message,
        linkPod,
      });

    // 18: a pod being deleted goes now, with its address (cascade) and its quota.
    if (pod.phase === 'DELETING' || pod.desiredState === 'DELETED') {
      const message = `Node ${nodeName} was lost while pod ${pod.name} was being deleted; the pod was removed and its address ${pod.ip ?? '(none)'} and quota released.`;
      // Written before the row goes, so the row's link is set to NULL by the delete (as the pod's older events).
      const written = await event(message, false);
      await client.query(`DELETE FROM pods WHERE id = $1 AND "nodeId" = $2`, [pod.id, nodeId]);
      await releaseQuota(client, pod.tenantId, pod, this.options.log);
      await this.outbox(client, pod, JobName.PodDeleted, {
        transition: 18,
        previousPhase: pod.phase,
        phase: null,
        desiredState: 'DELETED',
        nodeId,
        nodeEpoch: pod.nodeEpoch,
        releasedIp: pod.ip,
      });
      result.deleted++;
      return written;
    }

    // 14: a pod being stopped is stopped (its VM is gone with the node).
    if (pod.desiredState === 'STOPPED' || !LIVE_PHASES.has(pod.phase)) {
      const phase = pod.desiredState === 'STOPPED' ? 'STOPPED' : pod.phase;
      await client.query(
        `UPDATE pods SET phase = $3, "nodeId" = NULL, "nodeEpoch" = NULL, reason = 'NodeLost', message = $4,
                "finishedAt" = COALESCE("finishedAt", now()), "updatedAt" = now()
         WHERE id = $1 AND "nodeId" = $2`,
        [pod.id, nodeId, phase, `Node ${nodeName} was lost; the pod's VM is gone.`],
      );
      await this.exitContainers(client, pod.id);
      result.stopped++;
      return event(`Node ${nodeName} was lost while pod ${pod.name} was stopping; the pod is ${phase}.`);
    }

    // 11 with NEVER: never run twice.
    if (pod.restartPolicy === 'NEVER') {
      const message = `Node ${nodeName} was lost; pod ${pod.name} has restart policy NEVER and is not run again.`;
      await client.query(
        `UPDATE pods SET phase = 'FAILED', "nodeId" = NULL, "nodeEpoch" = NULL, reason = 'NodeLost', message = $3,
                "finishedAt" = now(), "updatedAt" = now()
         WHERE id = $1 AND "nodeId" = $2`,
        [pod.id, nodeId, message],
      );
      await this.exitContainers(client, pod.id);
      result.failed++;
      return event(message);
    }

    // 11: back to PENDING, re-placed at once after a first loss, with backoff after later ones.
    const replaced = await client.query<{ placeAfter: Date | null }>(
      `UPDATE pods SET phase = 'PENDING', "nodeId" = NULL, "nodeEpoch" = NULL, reason = 'NodeLost', message = $3,
              "lostCount" = "lostCount" + 1,
              "placeAfter" = CASE WHEN "lostCount" = 0 THEN NULL
                                  ELSE now() + LEAST($4::float8 * power(2::float8, LEAST("lostCount", 40)), $5::float8)
                                               * interval '1 millisecond' END,
              "updatedAt" = now()
       WHERE id = $1 AND "nodeId" = $2
       RETURNING "placeAfter"`,
      [
        pod.id,
        nodeId,
        `Node ${nodeName} was lost; the pod waits to be placed again.`,
        this.options.backoffBaseMs,
        this.options.backoffMaxMs,
      ],
    );
    await client.query(
      `UPDATE containers SET phase = 'WAITING', reason = 'NodeLost' WHERE "podId" = $1 AND phase = 'RUNNING'`,
      [pod.id],
    );
    await this.outbox(client, pod, JobName.PodPlacementRequested, { placement: pod.placement, reason: 'NodeLost' });
    result.replaced++;
    const placeAfter = replaced.rows[0]?.placeAfter ?? null;
    return event(
      `Node ${nodeName} was lost; pod ${pod.name} will be placed again` +
        (placeAfter === null ? '.' : ` after ${placeAfter.toISOString()} (repeated losses back off).`),
    );
  }

  private async exitContainers(client: Queryable, podId: string): Promise<void> {
    await client.query(
      `UPDATE containers SET phase = 'EXITED', reason = 'NodeLost', "finishedAt" = now()
       WHERE "podId" = $1 AND phase <> 'EXITED'`,
      [podId],
    );
  }

  private async outbox(client: Queryable, pod: PodRow, kind: JobName, payload: Record<string, unknown>): Promise<void> {
    await client.query(
      `INSERT INTO outbox ("aggregateType", "aggregateId", "tenantId", generation, kind, payload)
       VALUES ('pod', $1, $2, $3, $4, $5)`,
      [pod.id, pod.tenantId, pod.generation, kind, JSON.stringify(payload)],
    );
  }
}
