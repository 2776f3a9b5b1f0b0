import type { Job as BullJob } from 'bullmq';
import { DelayedError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { NodeInfo, PlacementSettings, PodRequest, PreparedNodes, Taint, Toleration } from '@caas/placement';
import {
  SpreadIndex,
  place,
  prepareNodes,
  reservationFor,
  resolveSettings,
  tenantPoolToleration,
} from '@caas/placement';
import type { JobHandlers, JobPayloads } from '@caas/queue-contracts';
import { JobName, QueueName, parseJob } from '@caas/queue-contracts';
import type { DesiredSetPublisher } from '../nodes/desired-set-publisher';

/**
 * Stalled-job settings. A job whose worker stops renewing its lock for `lockDuration` is "stalled" and is moved
 * back to wait by any worker's stalled check (every `stalledInterval`); placement is idempotent on (pod,
 * generation) and its reservation is one transaction, so running a stalled job again is safe. After
 * `maxStalledCount` stalls the job fails (kept for 7 days, see QUEUE_JOB_OPTIONS); reconcile re-announces the pod.
 */
export const PLACEMENT_STALLED_SETTINGS = { lockDuration: 30_000, stalledInterval: 15_000, maxStalledCount: 3 };

/** How long a process reuses its view of the nodes (refreshed at once after a lost race or an unschedulable pod). */
export const DEFAULT_NODE_CACHE_MS = 1_000;

/** Reservations that lose a race (the node changed between the read and the conditional UPDATE) per attempt. */
export const MAX_RESERVATION_CONFLICTS = 5;

export interface PlacementWorkerOptions {
  pool: pg.Pool;
  /** A connection for BullMQ's worker; it must have `maxRetriesPerRequest: null`. The caller closes it. */
  connection: Redis;
  prefix: string;
  log: Logger;
  concurrency: number;
  settings: Partial<PlacementSettings>;
  /** Delay before an unschedulable pod (or one that lost every reservation race) is tried again. */
  retryDelayMs: number;
  /** Publishes node desired sets after a placement or a change of a placed pod. */
  publisher: DesiredSetPublisher;
  /** How long the process reuses its view of the nodes (default DEFAULT_NODE_CACHE_MS). */
  nodeCacheMs?: number;
  /** Handlers of other loops (drain, suspension) that run on this queue, replacing the defaults. */
  handlers?: Partial<JobHandlers<HandlerContext>>;
  random?: () => number;
}

export interface PlacementStats {
  placed: number;
  unschedulable: number;
  conflicts: number;
  skipped: number;
}

export type PlacementOutcome = 'placed' | 'unschedulable' | 'conflicted' | 'skipped' | { deferUntil: Date };

interface PodRow {
  id: string;
  tenantId: string;
  labels: unknown;
  spec: unknown;
  vcpus: number;
  memoryMiB: number;
  generation: number;
  desiredState: string;
  phase: string;
  nodeId: string | null;
  placeAfter: Date | null;
}

interface NodeRow {
  id: string;
  name: string;
  status: string;
  cordoned: boolean;
  draining: boolean;
  diskPressure: boolean;
  labels: unknown;
  taints: unknown;
  capacityVcpus: number;
  capacityMemoryMiB: number;
  capacityPods: number;
  allocatedVcpus: number;
  allocatedMemoryMiB: number;
  allocatedPods: number;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

const stringRecord = (value: unknown): Record<string, string> =>
  isRecord(value)
    ? Object.fromEntries(Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string'))
    : {};

/**
 * The node's taints as stored by the API (`effect` NO_SCHEDULE | NO_EXECUTE, ADR-001). Both keep pods that do not
 * tolerate them off the node; NO_EXECUTE does not evict pods already there (not implemented).
 */
const taintsOf = (value: unknown): Taint[] =>
  Array.isArray(value)
    ? value.flatMap((t): Taint[] =>
        isRecord(t) && typeof t['key'] === 'string' && (t['effect'] === 'NO_SCHEDULE' || t['effect'] === 'NO_EXECUTE')
          ? [{ key: t['key'], value: typeof t['value'] === 'string' ? t['value'] : '', effect: 'NoSchedule' }]
          : [],
      )
    : [];

const tolerationsOf = (value: unknown): Toleration[] =>
  Array.isArray(value)
    ? value.filter(
        (t): t is Toleration =>
          isRecord(t) && typeof t['key'] === 'string' && (t['operator'] === 'Equal' || t['operator'] === 'Exists'),
      )
    : [];

function podRequest(row: PodRow): PodRequest {
  const spec = isRecord(row.spec) ? row.spec : {};
  return {
    id: row.id,
    tenantId: row.tenantId,
    vcpus: row.vcpus,
    memoryMiB: row.memoryMiB,
    labels: stringRecord(row.labels),
    nodeSelector: stringRecord(spec['nodeSelector']),
    tolerations: [...tolerationsOf(spec['tolerations']), tenantPoolToleration(row.tenantId)],
  };
}

function nodeInfo(row: NodeRow): NodeInfo {
  return {
    id: row.id,
    name: row.name,
    ready: row.status === 'READY',
    cordoned: row.cordoned,
    draining: row.draining,
    diskPressure: row.diskPressure,
    labels: stringRecord(row.labels),
    taints: taintsOf(row.taints),
    capacity: { vcpus: row.capacityVcpus, memoryMiB: row.capacityMemoryMiB, pods: row.capacityPods },
    allocated: { vcpus: row.allocatedVcpus, memoryMiB: row.allocatedMemoryMiB, pods: row.allocatedPods },
  };
}

/** A pod the placement worker acts on: the job's generation, still PENDING without a node, desired RUNNING. */
const placeable = (pod: PodRow, generation: number): boolean =>
  pod.generation === generation && pod.phase === 'PENDING' && pod.nodeId === null && pod.desiredState === 'RUNNING';

/**
 * Places pods (ADR-002 transitions 2 and 3). Stateless between jobs: every job reads the READY nodes and the
 * placed pods, decides with `place()`, and reserves with conditional UPDATEs in one transaction, so any number
 * of workers in any number of processes may run side by side.
 */
export class PlacementPlanner {
  readonly stats: PlacementStats = { placed: 0, unschedulable: 0, conflicts: 0, skipped: 0 };
  private readonly settings: Readonly<PlacementSettings>;
  private view: { nodes: PreparedNodes; readAt: number } | null = null;
  private loading: Promise<PreparedNodes> | null = null;

  constructor(
    private readonly pool: pg.Pool,
    private readonly log: Logger,
    settings: Partial<PlacementSettings>,
    private readonly publisher: DesiredSetPublisher,
    private readonly random: () => number = Math.random,
    private readonly nodeCacheMs: number = DEFAULT_NODE_CACHE_MS,
  ) {
    this.settings = resolveSettings(settings);
  }

  /** Tries to place the pod at `generation`; idempotent (a stale or already placed pod is skipped). */
  async placePod(podId: string, generation: number): Promise<PlacementOutcome> {
    const { rows } = await this.pool.query<PodRow>(
      `SELECT id, "tenantId", labels, spec, vcpus, "memoryMiB", generation, "desiredState", phase, "nodeId",
              "placeAfter"
       FROM pods WHERE id = $1`,
      [podId],
    );
    const pod = rows[0];
    if (!pod || !placeable(pod, generation)) {
      this.stats.skipped++;
      this.log.debug(
        { podId, generation, podGeneration: pod?.generation, phase: pod?.phase },
        'placement skipped: pod gone, newer generation, or no longer pending',
      );
      return 'skipped';
    }
    // Re-placement backoff (ADR-002): a pod whose VM or node was lost waits before it is placed again.
    if (pod.placeAfter !== null && pod.placeAfter.getTime() > Date.now()) return { deferUntil: pod.placeAfter };
    const request = podRequest(pod);
    let fresh = false;
    for (let attempt = 0; attempt < MAX_RESERVATION_CONFLICTS; attempt++) {
      const [nodes, placedRows] = await Promise.all([
        this.nodeView(fresh),
        this.pool.query<{ tenantId: string; labels: unknown; nodeId: string }>(
          `SELECT "tenantId", labels, "nodeId" FROM pods WHERE "nodeId" IS NOT NULL AND "tenantId" = $1`,
          [pod.tenantId],
        ),
      ]);
      const spread = new SpreadIndex();
      for (const p of placedRows.rows) spread.add(p.tenantId, stringRecord(p.labels), p.nodeId);
      const result = place(request, nodes, { spread, settings: this.settings, random: this.random });
      if (result.kind === 'unschedulable') {
        // A cached view may be a moment behind (capacity just freed, a node just joined): decide on a fresh one.
        if (!fresh) {
          fresh = true;
          attempt--;
          continue;
        }
        await this.recordUnschedulable(pod, result.reason);
        this.stats.unschedulable++;
        return 'unschedulable';
      }
      const outcome = await this.reserve(pod, result.nodeId, nodes);
      if (outcome === 'placed') await this.publisher.publishMany([result.nodeId]);
      if (outcome !== 'conflict') return outcome;
      this.stats.conflicts++;
      // The view was behind on that node (another replica reserved on it, or it changed): read it again.
      fresh = true;
      this.log.debug({ podId, nodeId: result.nodeId, attempt }, 'reservation lost a race; retrying on a fresh view');
    }
    return 'conflicted';
  }

  /**
   * The READY nodes as `place()` wants them, read at most every `nodeCacheMs` (or now, when `fresh`) and shared by
   * every job of this process; this process's own reservations are applied to it as they commit. Other replicas'
   * reservations show up at the next read — until then a pick may lose its conditional UPDATE, which costs a retry,
   * never an overcommit.
   */
  private async nodeView(fresh: boolean): Promise<PreparedNodes> {
    if (!fresh && this.view !== null && Date.now() - this.view.readAt < this.nodeCacheMs) return this.view.nodes;
    this.loading ??= (async () => {
      const readAt = Date.now();
      const { rows } = await this.pool.query<NodeRow>(
        `SELECT id, name, status, cordoned, draining, "diskPressure", labels, taints, "capacityVcpus",
                "capacityMemoryMiB", "capacityPods", "allocatedVcpus", "allocatedMemoryMiB", "allocatedPods"
         FROM nodes WHERE status = 'READY' ORDER BY name`,
      );
      const nodes = prepareNodes(rows.map(nodeInfo));
      this.view = { nodes, readAt };
      return nodes;
    })().finally(() => {
      this.loading = null;
    });
    return this.loading;
  }

  /** One transaction: node capacity (conditional), pod SCHEDULED (conditional), event `Scheduled`. */
  private async reserve(pod: PodRow, nodeId: string, view: PreparedNodes): Promise<'placed' | 'skipped' | 'conflict'> {
    const r = reservationFor(pod, this.settings);
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const node = await client.query<{
        epoch: number;
        name: string;
        allocatedVcpus: number;
        allocatedMemoryMiB: number;
        allocatedPods: number;
      }>(
        `UPDATE nodes SET "allocatedVcpus" = "allocatedVcpus" + $2, "allocatedMemoryMiB" = "allocatedMemoryMiB" + $3,
                "allocatedPods" = "allocatedPods" + $4, "desiredVersion" = "desiredVersion" + 1, "updatedAt" = now()
         WHERE id = $1 AND status = 'READY' AND NOT cordoned AND NOT draining AND NOT "diskPressure"
           AND "allocatedVcpus" + $2 <= "capacityVcpus" AND "allocatedMemoryMiB" + $3 <= "capacityMemoryMiB"
           AND "allocatedPods" + $4 <= "capacityPods"
         RETURNING epoch, name, "allocatedVcpus", "allocatedMemoryMiB", "allocatedPods"`,
        [nodeId, r.vcpus, r.memoryMiB, r.pods],
      );
      const reserved = node.rows[0];
      if (!reserved) {
        await client.query('ROLLBACK');
        return 'conflict';
      }
      const updated = await client.query(
        `UPDATE pods SET phase = 'SCHEDULED', "nodeId" = $3, "nodeEpoch" = $4, "scheduledAt" = now(), reason = NULL,
                message = NULL, placement = placement + 1, "placeAfter" = NULL, "updatedAt" = now()
         WHERE id = $1 AND generation = $2 AND phase = 'PENDING' AND "nodeId" IS NULL AND "desiredState" = 'RUNNING'
           AND EXISTS (SELECT 1 FROM tenants t WHERE t.id = pods."tenantId" AND t.status = 'ACTIVE')`,
        [pod.id, pod.generation, nodeId, reserved.epoch],
      );
      if (updated.rowCount !== 1) {
        // Stopped, deleted, suspended or placed by another worker since we read it: release nothing, change nothing.
        await client.query('ROLLBACK');
        this.stats.skipped++;
        return 'skipped';
      }
      await client.query(
        `INSERT INTO events ("tenantId", "podId", "nodeId", type, reason, message)
         VALUES ($1, $2, $3, 'NORMAL', 'Scheduled', $4)`,
        [pod.tenantId, pod.id, nodeId, `Successfully assigned pod to node ${reserved.name}`],
      );
      await client.query('COMMIT');
      view.update(nodeId, {
        vcpus: reserved.allocatedVcpus,
        memoryMiB: reserved.allocatedMemoryMiB,
        pods: reserved.allocatedPods,
      });
      this.stats.placed++;
      this.log.info({ podId: pod.id, generation: pod.generation, nodeId }, 'pod scheduled');
      return 'placed';
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  /**
   * A placed pod's desired state or spec changed (ADR-002 13, 16, 17): bump its node's `desiredVersion` and publish
   * the set. Only while the pod still has that generation (a newer change announces itself); a duplicate job bumps
   * the version once more, which costs the agent one more (identical) convergence and nothing else.
   */
  async announcePodChange(podId: string, generation: number): Promise<void> {
    const { rows } = await this.pool.query<{ id: string }>(
      `UPDATE nodes n SET "desiredVersion" = n."desiredVersion" + 1, "updatedAt" = now()
       FROM pods p WHERE p.id = $1 AND p.generation = $2 AND n.id = p."nodeId" RETURNING n.id`,
      [podId, generation],
    );
    await this.publisher.publishMany(rows.map((r) => r.id));
  }

  /**
   * Transition 3: the pod stays PENDING with `reason = Unschedulable` and the message; an event
   * `FailedScheduling` is written only when the message changed (no event per retry).
   */
  private async recordUnschedulable(pod: PodRow, reason: string): Promise<void> {
    const message = reason.slice(0, 1000);
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const changed = await client.query(
        `UPDATE pods SET reason = 'Unschedulable', message = $3, "updatedAt" = now()
         WHERE id = $1 AND generation = $2 AND phase = 'PENDING' AND "nodeId" IS NULL
           AND (reason IS DISTINCT FROM 'Unschedulable' OR message IS DISTINCT FROM $3)`,
        [pod.id, pod.generation, message],
      );
      if (changed.rowCount === 1) {
        await client.query(
          `INSERT INTO events ("tenantId", "podId", type, reason, message)
           VALUES ($1, $2, 'WARNING', 'FailedScheduling', $3)`,
          [pod.tenantId, pod.id, message],
        );
      }
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }
}

/** What a handler tells the worker: done, or try this job again later. */
export interface HandlerContext {
  /** Milliseconds to wait before the job runs again, or `null` when it is done. */
  retryInMs: number | null;
}

/** After losing every reservation race the pod is retried soon, not after the unschedulable delay. */
const CONFLICT_RETRY_MS = 100;

/** The BullMQ worker of the placement queue: validates each job (`parseJob`) and dispatches it by name. */
export class PlacementWorker {
  readonly planner: PlacementPlanner;
  private readonly worker: Worker;
  private readonly handlers: JobHandlers<HandlerContext>;

  constructor(private readonly options: PlacementWorkerOptions) {
    this.planner = new PlacementPlanner(
      options.pool,
      options.log,
      options.settings,
      options.publisher,
      options.random,
      options.nodeCacheMs,
    );
    const placePod = async (data: { podId: string; generation: number }, context: HandlerContext) => {
      const outcome = await this.planner.placePod(data.podId, data.generation);
      if (typeof outcome === 'object') context.retryInMs = Math.max(0, outcome.deferUntil.getTime() - Date.now());
      if (outcome === 'unschedulable') context.retryInMs = options.retryDelayMs;
      if (outcome === 'conflicted') {
        context.retryInMs = Math.min(
          options.retryDelayMs,
          CONFLICT_RETRY_MS + Math.floor(Math.random() * CONFLICT_RETRY_MS),
        );
      }
    };
    /** A bump that fails fails the job (retried); a publish that fails is repaired by reconcile (version newer). */
    const republishTenant = async (data: { tenantId: string }): Promise<void> => {
      await options.publisher.republishTenants([data.tenantId]);
    };
    const ignore =
      (name: JobName) =>
      async (data: JobPayloads[JobName]): Promise<void> => {
        options.log.debug({ job: name, generation: data.generation }, 'placement worker: nothing to do for this job');
      };
    this.handlers = {
      [JobName.PodCreated]: placePod,
      [JobName.PodDesiredStateChanged]: async (data, context) => {
        if (data.desiredState === 'RUNNING' && data.phase === 'PENDING' && data.nodeId === null) {
          await placePod(data, context);
        } else if (data.nodeId !== null) {
          // 13, 17: the pod's node must stop or destroy its VM: a new version of that node's set.
          await this.planner.announcePodChange(data.podId, data.generation);
        } else {
          options.log.debug(
            { podId: data.podId, transition: data.transition },
            'desired-state change needs no placement',
          );
        }
      },
      [JobName.PodRestartRequested]: (data) => this.planner.announcePodChange(data.podId, data.generation),
      [JobName.PodDeleted]: ignore(JobName.PodDeleted),
      [JobName.PodPlacementRequested]: placePod,
      // The tenant's networks carry its policies: every node with a pod of the tenant gets a new set.
      [JobName.NetworkPolicyCreated]: republishTenant,
      [JobName.NetworkPolicyUpdated]: republishTenant,
      [JobName.NetworkPolicyDeleted]: republishTenant,
      [JobName.TenantQuotaChanged]: ignore(JobName.TenantQuotaChanged),
      [JobName.TenantSuspended]: ignore(JobName.TenantSuspended),
      [JobName.TenantUnsuspended]: ignore(JobName.TenantUnsuspended),
      // The set carries the node's cordon flag; the API bumped its version with the change.
      [JobName.NodeCordoned]: (data) => options.publisher.publishMany([data.nodeId]),
      [JobName.NodeUncordoned]: (data) => options.publisher.publishMany([data.nodeId]),
      [JobName.NodeDrained]: ignore(JobName.NodeDrained),
      ...options.handlers,
    };
    this.worker = new Worker(QueueName.Placement, (job, token) => this.process(job, token), {
      connection: options.connection,
      prefix: options.prefix,
      concurrency: options.concurrency,
      autorun: false,
      ...PLACEMENT_STALLED_SETTINGS,
    });
    this.worker.on('error', (error) => options.log.warn({ err: error }, 'placement worker error'));
    this.worker.on('failed', (job, error) =>
      options.log.error({ err: error, jobId: job?.id, job: job?.name }, 'placement job failed'),
    );
  }

  start(): void {
    void this.worker.run();
  }

  async waitUntilReady(): Promise<void> {
    await this.worker.waitUntilReady();
  }

  /** Lets the jobs under way finish, then stops. */
  async close(): Promise<void> {
    await this.worker.close();
  }

  private async process(job: BullJob, token: string | undefined): Promise<void> {
    const parsed = parseJob(job.name, job.data);
    if (!parsed.ok) {
      // A job the contract refuses never becomes valid by retrying: log it and complete it.
      this.options.log.error({ jobId: job.id, error: parsed.error }, 'placement worker: invalid job dropped');
      return;
    }
    const context: HandlerContext = { retryInMs: null };
    const handler = this.handlers[parsed.job.name] as (data: unknown, context: HandlerContext) => Promise<void>;
    await handler(parsed.job.data, context);
    if (context.retryInMs !== null) {
      // Not a failure: wait and try again, without using up the job's attempts.
      await job.moveToDelayed(Date.now() + context.retryInMs, token);
      throw new DelayedError();
    }
  }
}
