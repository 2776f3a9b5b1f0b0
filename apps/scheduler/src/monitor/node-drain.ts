import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { PodEventMessage } from '@caas/log-stream-contract';
import type { JobPayloads } from '@caas/queue-contracts';
import { JobName } from '@caas/queue-contracts';
import type { DesiredSetPublisher } from '../nodes/desired-set-publisher';
import type { HandlerContext } from '../placement/placement-worker';
import { Rollback, inTransactionOr, insertPodEvent, publishPodEvents } from '../common/pod-changes';

export interface NodeDrainerOptions {
  pool: pg.Pool;
  /** A producer connection: pod events are published on it. */
  redis: Redis;
  publisher: DesiredSetPublisher;
  log: Logger;
  /** VM_OVERHEAD_MIB: what each placed pod reserved beyond its memory. */
  vmOverheadMiB: number;
  /** How long a drain that could not move every pod (they kept changing under it) waits before it runs again. */
  retryDelayMs?: number;
}

export interface DrainResult {
  /** `not-draining`: the node is gone or was uncordoned since; nothing was done. */
  outcome: 'drained' | 'not-draining' | 'incomplete';
  moved: number;
  failed: number;
}

interface PodRow {
  id: string;
  tenantId: string;
  name: string;
  phase: string;
  restartPolicy: string;
  generation: number;
  placement: number;
  vcpus: number;
  memoryMiB: number;
}

/** Read-and-move rounds per job before it is retried later (each round re-reads the pods that changed under it). */
const ROUNDS = 3;

/**
 * Handles `node.drained`: moves every pod with desired RUNNING off a draining node. One transaction per pod,
 * conditional on the pod still being on that node with the phase and generation read: the pod becomes PENDING
 * (reason `Drained`, no backoff: it did nothing wrong) with an outbox `pod.placement-requested`, or FAILED if its
 * policy is `NEVER` (never run twice); the node's capacity is released and its `desiredVersion` bumped in the same
 * transaction. Pods desired STOPPED or DELETED stay until their node reports them gone. Afterwards the node's set is
 * published (the agent then destroys the VMs the set no longer contains).
 *
 * Idempotent on (node, desiredVersion): the job's generation is the version the drain request produced, and the
 * handler acts on the node's current state only — a node no longer draining (uncordoned since) is left alone, and
 * running the job again finds no pod left to move.
 */
export class NodeDrainer {
  constructor(private readonly options: NodeDrainerOptions) {}

  /** The handler for `PlacementWorkerOptions.handlers[JobName.NodeDrained]`. */
  readonly handle = async (data: JobPayloads[JobName.NodeDrained], context: HandlerContext): Promise<void> => {
    const result = await this.drain(data.nodeId, data.generation);
    if (result.outcome === 'incomplete') context.retryInMs = this.options.retryDelayMs ?? 1_000;
  };

  async drain(nodeId: string, generation: number): Promise<DrainResult> {
    const { pool, log } = this.options;
    const result: DrainResult = { outcome: 'drained', moved: 0, failed: 0 };
    const events: PodEventMessage[] = [];
    try {
      for (let round = 0; ; round++) {
        const node = await pool.query<{ name: string; draining: boolean; desiredVersion: string }>(
          `SELECT name, draining, "desiredVersion"::text AS "desiredVersion" FROM nodes WHERE id = $1`,
          [nodeId],
        );
        const row = node.rows[0];
        if (!row?.draining) {
          log.info({ nodeId, generation }, 'drain skipped: the node is gone or no longer draining');
          return { ...result, outcome: round === 0 ? 'not-draining' : result.outcome };
        }
        const pods = await pool.query<PodRow>(
          `SELECT id, "tenantId", name, phase, "restartPolicy", generation, placement, vcpus, "memoryMiB"
           FROM pods WHERE "nodeId" = $1 AND "desiredState" = 'RUNNING' AND phase <> 'DELETING' ORDER BY id`,
          [nodeId],
        );
        if (pods.rows.length === 0) break;
        if (round >= ROUNDS) {
          result.outcome = 'incomplete';
          log.warn({ nodeId, left: pods.rows.length }, 'drain incomplete: pods kept changing; retried later');
          break;
        }
        for (const pod of pods.rows) {
          const moved = await this.movePod(nodeId, row.name, pod);
          if (moved === null) continue;
          events.push(moved);
          if (pod.restartPolicy === 'NEVER') result.failed++;
          else result.moved++;
        }
      }
    } finally {
      if (result.moved + result.failed > 0) {
        await this.options.publisher.publishMany([nodeId]);
        await publishPodEvents(this.options.redis, events, log);
      }
    }
    log.info({ nodeId, generation, ...result }, 'node drained');
    return result;
  }

  /** One pod off the node, in one transaction; null when the pod changed under us (re-read in the next round). */
  private movePod(nodeId: string, nodeName: string, pod: PodRow): Promise<PodEventMessage | null> {
    const never = pod.restartPolicy === 'NEVER';
    const message = never
      ? `Node ${nodeName} is being drained; pod ${pod.name} has restart policy NEVER and is not run again.`
      : `Node ${nodeName} is being drained; pod ${pod.name} waits to be placed on another node.`;
    return inTransactionOr<PodEventMessage | null>(this.options.pool, async (client) => {
      // The node first (the order placement locks in), conditional on it still draining; then the pod.
      const memory = pod.memoryMiB + this.options.vmOverheadMiB;
      const node = await client.query(
        `UPDATE nodes SET "allocatedVcpus" = GREATEST("allocatedVcpus" - $2, 0),
                "allocatedMemoryMiB" = GREATEST("allocatedMemoryMiB" - $3, 0),
                "allocatedPods" = GREATEST("allocatedPods" - 1, 0),
                "desiredVersion" = "desiredVersion" + 1, "updatedAt" = now()
         WHERE id = $1 AND draining`,
        [nodeId, pod.vcpus, memory],
      );
      if (node.rowCount !== 1) throw new Rollback(null);
      const updated = await client.query(
        `UPDATE pods SET phase = $5::"PodPhase", "nodeId" = NULL, "nodeEpoch" = NULL, reason = 'Drained', message = $6,
                "placeAfter" = NULL, "finishedAt" = CASE WHEN $7 THEN now() ELSE "finishedAt" END,
                "updatedAt" = now()
         WHERE id = $1 AND "nodeId" = $2 AND phase = $3 AND generation = $4 AND "desiredState" = 'RUNNING'`,
        [pod.id, nodeId, pod.phase, pod.generation, never ? 'FAILED' : 'PENDING', message, never],
      );
      if (updated.rowCount !== 1) throw new Rollback(null);
      await client.query(
        never
          ? `UPDATE containers SET phase = 'EXITED', reason = 'Drained', "finishedAt" = now()
             WHERE "podId" = $1 AND phase <> 'EXITED'`
          : `UPDATE containers SET phase = 'WAITING', reason = 'Drained' WHERE "podId" = $1 AND phase = 'RUNNING'`,
        [pod.id],
      );
      if (!never) {
        await client.query(
          `INSERT INTO outbox ("aggregateType", "aggregateId", "tenantId", generation, kind, payload)
           VALUES ('pod', $1, $2, $3, $4, $5)`,
          [
            pod.id,
            pod.tenantId,
            pod.generation,
            JobName.PodPlacementRequested,
            JSON.stringify({ placement: pod.placement, reason: 'Drained' }),
          ],
        );
      }
      return insertPodEvent(client, {
        tenantId: pod.tenantId,
        podId: pod.id,
        nodeId,
        type: 'WARNING',
        reason: 'Drained',
        message,
      });
    });
  }
}
