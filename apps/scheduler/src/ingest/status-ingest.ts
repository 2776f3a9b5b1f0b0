import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { PodEventMessage } from '@caas/log-stream-contract';
import { reservationFor } from '@caas/placement';
import type { Heartbeat, NodeEvent, PodStatus, PolicyCountersReport } from '@caas/queue-contracts';
import {
  JobName,
  STATUS_CONSUMER_GROUP,
  STATUS_FIELD,
  nodeIdOfStatusKey,
  nodeKeys,
  parseNodeReport,
} from '@caas/queue-contracts';
import { publishPodEvents, releaseQuota } from '../common/pod-changes';
import type { DesiredSetPublisher } from '../nodes/desired-set-publisher';
import type { SchedulerConfig } from '../config/scheduler-config';
import type { ContainerUpdate, PodDecision, PodState } from './pod-status-decision';
import { decidePodStatus, replaceBackoffMs } from './pod-status-decision';
import { InterruptibleSleep } from '../common/interruptible-sleep';
import { counterRows, storePolicyCounters } from './policy-counters';

/** The scheduler settings status ingest runs with (pass the loaded config as is). */
export type StatusIngestSettings = Pick<
  SchedulerConfig,
  | 'NODE_LEASE_GRACE_MS'
  | 'INGEST_BATCH_SIZE'
  | 'INGEST_BLOCK_MS'
  | 'INGEST_NODE_REFRESH_MS'
  | 'INGEST_CLAIM_IDLE_MS'
  | 'REPLACE_BACKOFF_BASE_MS'
  | 'REPLACE_BACKOFF_MAX_MS'
>;

export interface StatusIngestOptions {
  pool: pg.Pool;
  /** A dedicated connection for XREADGROUP … BLOCK (`maxRetriesPerRequest: null`); the caller closes it. */
  redis: Redis;
  /** A producer connection: pod events are published on it. */
  producer: Redis;
  /** Base of the node prefixes (`<base>:node:<id>`): the scheduler's QUEUE_PREFIX. */
  prefix: string;
  log: Logger;
  publisher: DesiredSetPublisher;
  settings: StatusIngestSettings;
  /** Memory each VM costs beyond its RAM: the same value placement reserves with (VM_OVERHEAD_MIB). */
  vmOverheadMiB: number;
  /** The consumer name in the group; unique per process (default: host, pid and random). */
  consumerName?: string;
}

/** One entry of a node's status stream (`fields` is null when the entry was trimmed before it was read). */
export interface StreamEntry {
  stream: string;
  id: string;
  fields: string[] | null;
}

export interface IngestStats {
  entries: number;
  /** Entries that are not a valid report (or not on a node's status stream): acknowledged and dropped. */
  invalid: number;
  heartbeats: number;
  /** Heartbeats of an older (or unknown) epoch: no lease, the node's set re-published. */
  staleHeartbeats: number;
  podStatuses: number;
  /** Pod statuses that changed the database. */
  applied: number;
  /** Pod statuses refused: another node's pod, another epoch or placement, unknown pod. */
  dropped: number;
  /** Conditional updates that lost to a concurrent change more often than the retries allow. */
  conflicts: number;
  /** Entries whose processing failed (left pending, claimed again later). */
  failed: number;
  /** Placed pods missing from a heartbeat of a node that converged on its current set (treated as LOST). */
  missing: number;
  /** Entries taken over from idle consumers. */
  claimed: number;
  /** `policyCounters` reports stored (one per node and batch: the newest of the batch supersedes the others). */
  policyCounters: number;
  /** `policyCounters` reports refused: another (or an unknown) epoch, or more counters than one report may carry. */
  droppedPolicyCounters: number;
}

/** Attempts at one pod status when its conditional update loses to a concurrent change (re-read each time). */
const STATUS_ATTEMPTS = 3;
/** Longest pause after consecutive loop failures. */
const MAX_FAILURE_BACKOFF_MS = 5_000;
/** Entries taken over per XAUTOCLAIM call, and calls per stream per round. */
const CLAIM_COUNT = 100;
const CLAIM_CALLS_PER_STREAM = 10;

const POD_COLUMNS = `
  p.id, p."tenantId", p.name, p.phase, p."desiredState", p."restartPolicy", p.generation, p."observedGeneration",
  p."nodeId", p."nodeEpoch", p.placement, p."lostCount", p."imageDigests", p.accelerator, p.vcpus, p."memoryMiB",
  host(p.ip) AS ip,
  COALESCE((SELECT json_agg(json_build_object('name', c.name, 'image', c.image, 'phase', c.phase,
      'exitCode', c."exitCode", 'signal', c.signal, 'reason', c.reason, 'restartCount', c."restartCount",
      'startedAt', c."startedAt", 'finishedAt', c."finishedAt") ORDER BY c.ordinal)
    FROM containers c WHERE c."podId" = p.id), '[]'::json) AS containers`;

/** The row a decision was taken on: a transition applies only while the pod is still exactly there. */
const POD_IS_AS_READ = `id = $1 AND phase = $2::"PodPhase" AND generation = $3 AND "nodeId" = $4 AND "nodeEpoch" = $5
  AND placement = $6`;

/** Node capacity released (clamped at zero: the invariant check of reconcile reports a broken sum) and a new set. */
const RELEASE_NODE_SQL = `
  UPDATE nodes SET "allocatedVcpus" = GREATEST("allocatedVcpus" - $2, 0),
         "allocatedMemoryMiB" = GREATEST("allocatedMemoryMiB" - $3, 0), "allocatedPods" = GREATEST("allocatedPods" - $4, 0),
         "desiredVersion" = "desiredVersion" + 1, "updatedAt" = now()
   WHERE id = $1`;

const HEARTBEAT_SQL = `
  WITH hb AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::bigint[], $4::int[], $5::int[], $6::int[], $7::bigint[],
                         $8::jsonb[], $9::boolean[], $10::text[])
      AS h(id, epoch, "appliedVersion", vcpus, "memoryMiB", pods, "diskBytes", usage, "diskPressure", accelerator)
  ), old AS (
    SELECT n.id, n.status FROM nodes n JOIN hb ON hb.id = n.id AND hb.epoch = n.epoch ORDER BY n.id FOR UPDATE OF n
  )
  UPDATE nodes n
     SET "lastHeartbeatAt" = now(), "leaseExpiresAt" = now() + $11::int * interval '1 millisecond',
         "capacityVcpus" = hb.vcpus, "capacityMemoryMiB" = hb."memoryMiB", "capacityPods" = hb.pods,
         "capacityDiskBytes" = hb."diskBytes", usage = hb.usage, "diskPressure" = hb."diskPressure",
         accelerator = hb.accelerator::"Accelerator", "appliedVersion" = GREATEST(n."appliedVersion", hb."appliedVersion"), status = 'READY',
         "updatedAt" = now()
    FROM hb JOIN old ON old.id = hb.id
   WHERE n.id = hb.id AND n.epoch = hb.epoch
  RETURNING n.id, n.name, n.epoch, old.status AS "previousStatus"`;

interface PodRow extends Omit<PodState, 'imageDigests' | 'containers'> {
  imageDigests: unknown;
  containers: PodState['containers'];
}

interface EventRow {
  tenantId: string | null;
  podId: string | null;
  nodeId: string | null;
  type: 'NORMAL' | 'WARNING';
  reason: string;
  message: string;
  /** The pod channel the event goes to after commit (the pod's, even when the row no longer links it). */
  channelPodId: string | null;
}

interface StatusItem {
  key: string;
  nodeId: string;
  epoch: number;
  status: PodStatus;
  events: NodeEvent[];
}

/** What one batch's transactions leave for after their commits. */
interface AfterCommit {
  nodes: Set<string>;
  events: PodEventMessage[];
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

const stringRecord = (value: unknown): Record<string, string> =>
  isRecord(value)
    ? Object.fromEntries(Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string'))
    : {};

const entryKey = (stream: string, id: string): string => `${stream}\u0000${id}`;

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

function fieldValue(fields: string[] | null, name: string): string | null {
  if (fields === null) return null;
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1] ?? null;
  return null;
}

/** Parses the reply of XREADGROUP (`[[key, [[id, fields], …]], …]`) or the entries of XAUTOCLAIM. */
function entriesOf(stream: string, raw: unknown): StreamEntry[] {
  if (!Array.isArray(raw)) return [];
  return raw.flatMap((item: unknown) => {
    if (!Array.isArray(item) || typeof item[0] !== 'string') return [];
    const fields = Array.isArray(item[1]) ? item[1].map((f: unknown) => String(f)) : null;
    return [{ stream, id: item[0], fields }];
  });
}

/**
 * Status ingest (ADR-002 "Status ingest", ADR-009): reads every node's status stream through the consumer group
 * all scheduler replicas share, so each entry is processed by one replica, and turns heartbeats and pod reports
 * into the database's view of nodes and pods. A node's identity is the key of the stream an entry was read from.
 * Entries are acknowledged after their transactions commit; an entry whose processing failed stays pending and
 * is claimed again (by any replica) once idle for INGEST_CLAIM_IDLE_MS. Every change is a conditional update on
 * the row as read, so replayed, duplicated and late entries are harmless.
 */
export class StatusIngest {
  readonly stats: IngestStats = {
    entries: 0,
    invalid: 0,
    heartbeats: 0,
    staleHeartbeats: 0,
    podStatuses: 0,
    applied: 0,
    dropped: 0,
    conflicts: 0,
    failed: 0,
    claimed: 0,
    missing: 0,
    policyCounters: 0,
    droppedPolicyCounters: 0,
  };
  readonly consumer: string;
  private streams: string[] = [];
  private readonly groups = new Set<string>();
  private loop: Promise<void> | undefined;
  private stopping = false;
  private readonly pause = new InterruptibleSleep();
  private nextRefreshAt = 0;
  private nextClaimAt = 0;

  constructor(private readonly options: StatusIngestOptions) {
    this.consumer = options.consumerName ?? `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
  }

  /** Starts the loop (idempotent). */
  start(): void {
    this.stopping = false;
    this.loop ??= this.run();
  }

  /** Finishes the batch under way (a blocked read returns within INGEST_BLOCK_MS), then stops. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.pause.wake();
    await this.loop;
    this.loop = undefined;
  }

  /** The status streams read, one per node (refreshed from PostgreSQL). */
  get streamKeys(): readonly string[] {
    return this.streams;
  }

  /** Re-reads the nodes and creates the consumer group on each new node's stream. */
  async refreshNodes(): Promise<void> {
    const { rows } = await this.options.pool.query<{ id: string }>('SELECT id FROM nodes ORDER BY id');
    const keys = rows.map((row) => nodeKeys(row.id, this.options.prefix).status);
    await Promise.all(keys.filter((key) => !this.groups.has(key)).map((key) => this.ensureGroup(key)));
    this.streams = keys;
  }

  /** Reads one batch (blocking up to INGEST_BLOCK_MS) from every node's stream, processes and acknowledges it. */
  async readOnce(): Promise<number> {
    if (this.streams.length === 0) return 0;
    const { INGEST_BATCH_SIZE, INGEST_BLOCK_MS } = this.options.settings;
    const reply: unknown = await this.options.redis.call(
      'XREADGROUP',
      'GROUP',
      STATUS_CONSUMER_GROUP,
      this.consumer,
      'COUNT',
      INGEST_BATCH_SIZE,
      'BLOCK',
      INGEST_BLOCK_MS,
      'STREAMS',
      ...this.streams,
      ...this.streams.map(() => '>'),
    );
    const entries = Array.isArray(reply)
      ? reply.flatMap((item: unknown) =>
          Array.isArray(item) && typeof item[0] === 'string' ? entriesOf(item[0], item[1]) : [],
        )
      : [];
    if (entries.length > 0) await this.processEntries(entries);
    return entries.length;
  }

  /** Takes over entries other consumers (dead replicas) left unacknowledged for INGEST_CLAIM_IDLE_MS, and processes them. */
  async claimIdle(): Promise<number> {
    let total = 0;
    for (const stream of this.streams) {
      let start = '0-0';
      for (let call = 0; call < CLAIM_CALLS_PER_STREAM; call++) {
        const reply: unknown = await this.options.redis.call(
          'XAUTOCLAIM',
          stream,
          STATUS_CONSUMER_GROUP,
          this.consumer,
          this.options.settings.INGEST_CLAIM_IDLE_MS,
          start,
          'COUNT',
          CLAIM_COUNT,
        );
        if (!Array.isArray(reply)) break;
        const entries = entriesOf(stream, reply[1]);
        if (entries.length > 0) {
          total += entries.length;
          this.stats.claimed += entries.length;
          this.options.log.info({ stream, entries: entries.length }, 'status ingest: claimed idle entries');
          await this.processEntries(entries);
        }
        start = typeof reply[0] === 'string' ? reply[0] : '0-0';
        if (start === '0-0') break;
      }
    }
    return total;
  }

  /**
   * Processes entries read from status streams and acknowledges those that are done (processed, or invalid and
   * dropped). Never throws for bad input; an entry whose processing hit an error is left pending.
   */
  async processEntries(entries: readonly StreamEntry[]): Promise<void> {
    const done = new Map<string, string[]>();
    const failed = new Set<string>();
    const heartbeats = new Map<string, { key: string; heartbeat: Heartbeat }>();
    const heartbeatKeys = new Map<string, string[]>();
    const items: StatusItem[] = [];
    const counters = new Map<string, { keys: string[]; report: PolicyCountersReport }>();
    for (const entry of entries) {
      this.stats.entries++;
      const key = entryKey(entry.stream, entry.id);
      const list = done.get(entry.stream) ?? [];
      list.push(entry.id);
      done.set(entry.stream, list);
      const nodeId = nodeIdOfStatusKey(entry.stream, this.options.prefix);
      const json = fieldValue(entry.fields, STATUS_FIELD);
      const parsed =
        nodeId === null
          ? { ok: false as const, error: 'not a node status stream' }
          : json === null
            ? { ok: false as const, error: `no field ${STATUS_FIELD} (or the entry was trimmed)` }
            : parseNodeReport(json);
      if (!parsed.ok || nodeId === null) {
        this.stats.invalid++;
        this.options.log.warn(
          { stream: entry.stream, entryId: entry.id, error: parsed.ok ? 'no node' : parsed.error },
          'status ingest: invalid entry dropped',
        );
        continue;
      }
      const report = parsed.report;
      if (report.kind === 'heartbeat') {
        this.stats.heartbeats++;
        heartbeats.set(nodeId, { key, heartbeat: report }); // the newest of the batch decides the node's row
        heartbeatKeys.set(nodeId, [...(heartbeatKeys.get(nodeId) ?? []), key]);
        for (const status of report.pods) items.push({ key, nodeId, epoch: report.epoch, status, events: [] });
      } else if (report.kind === 'policyCounters') {
        // Level-triggered totals: the newest of the batch (streams are read in order) replaces the node's rows.
        counters.set(nodeId, { keys: [...(counters.get(nodeId)?.keys ?? []), key], report });
      } else {
        items.push({ key, nodeId, epoch: report.epoch, status: report.status, events: report.events });
      }
    }

    const after: AfterCommit = { nodes: new Set(), events: [] };
    try {
      await this.applyHeartbeats([...heartbeats.entries()].map(([nodeId, h]) => ({ nodeId, heartbeat: h.heartbeat })));
    } catch (error) {
      this.options.log.error({ err: error }, 'status ingest: heartbeat batch failed; entries stay pending');
      for (const keys of heartbeatKeys.values()) for (const key of keys) failed.add(key);
    }
    try {
      items.push(...(await this.missingFromHeartbeats(heartbeats)));
    } catch (error) {
      this.options.log.warn({ err: error }, 'status ingest: looking for pods missing from heartbeats failed');
    }
    await this.applyStatuses(items, failed, after);
    await this.applyPolicyCounters(counters, failed);

    await this.options.publisher.publishMany(after.nodes);
    await this.publishEvents(after.events);

    const acks = [...done.entries()]
      .map(([stream, ids]) => [stream, ids.filter((id) => !failed.has(entryKey(stream, id)))] as const)
      .filter(([, ids]) => ids.length > 0);
    this.stats.failed += failed.size;
    await Promise.all(acks.map(([stream, ids]) => this.options.redis.xack(stream, STATUS_CONSUMER_GROUP, ...ids)));
  }

  /**
   * Each node's newest `policyCounters` report of the batch replaces that node's stored totals (ADR-009 "Reports"):
   * only under the node's current epoch, and only for tenants that exist. The node is the stream's, never the
   * report's. A failed write leaves the node's entries pending (claimed and tried again).
   */
  private async applyPolicyCounters(
    counters: Map<string, { keys: string[]; report: PolicyCountersReport }>,
    failed: Set<string>,
  ): Promise<void> {
    for (const [nodeId, { keys, report }] of counters) {
      const rows = counterRows(report);
      if (rows === null) {
        this.stats.droppedPolicyCounters++;
        this.options.log.warn({ nodeId }, 'status ingest: policy counters report with too many counters dropped');
        continue;
      }
      try {
        const result = await storePolicyCounters(this.options.pool, nodeId, report, rows);
        if (result.current) this.stats.policyCounters++;
        else {
          this.stats.droppedPolicyCounters++;
          this.options.log.debug({ nodeId, epoch: report.epoch }, 'status ingest: stale policy counters dropped');
        }
      } catch (error) {
        this.options.log.error({ err: error, nodeId }, 'status ingest: storing policy counters failed');
        for (const key of keys) failed.add(key);
      }
    }
  }

  /**
   * Pods a node no longer runs although it says it converged on its current set: a heartbeat whose epoch and
   * applied version equal the node's lists every pod of that set (ADR-009), so a placed pod of that epoch missing
   * from it has lost its VM without a report (say, the agent lost its state). Each becomes a LOST status of its
   * current generation and placement, decided like any other report (re-placed, FAILED, STOPPED or removed).
   */
  private async missingFromHeartbeats(heartbeats: Map<string, { key: string; heartbeat: Heartbeat }>) {
    if (heartbeats.size === 0) return [];
    const entries = [...heartbeats.entries()];
    const { rows } = await this.options.pool.query<{
      id: string;
      nodeId: string;
      generation: number;
      placement: number;
    }>(
      `SELECT p.id, p."nodeId", p.generation, p.placement
         FROM unnest($1::uuid[], $2::int[], $3::bigint[]) AS h(id, epoch, applied)
         JOIN nodes n ON n.id = h.id AND n.epoch = h.epoch AND n."desiredVersion" = h.applied
         JOIN pods p ON p."nodeId" = n.id AND p."nodeEpoch" = n.epoch
        WHERE p.phase IN ('SCHEDULED', 'STARTING', 'RUNNING', 'DELETING')`,
      [
        entries.map(([nodeId]) => nodeId),
        entries.map(([, h]) => h.heartbeat.epoch),
        entries.map(([, h]) => h.heartbeat.appliedVersion),
      ],
    );
    return rows.flatMap((pod): StatusItem[] => {
      const hb = heartbeats.get(pod.nodeId);
      if (hb === undefined || hb.heartbeat.pods.some((listed) => listed.podId === pod.id)) return [];
      this.stats.missing++;
      const message = "The node converged on its desired set but no longer runs this pod's VM.";
      return [
        {
          key: hb.key,
          nodeId: pod.nodeId,
          epoch: hb.heartbeat.epoch,
          status: {
            podId: pod.id,
            generation: pod.generation,
            placement: pod.placement,
            phase: 'LOST',
            reason: 'VMMissing',
            message,
            accelerator: null,
            imageDigests: {},
            containers: [],
          },
          events: [{ type: 'WARNING', reason: 'VMMissing', message, at: new Date().toISOString() }],
        },
      ];
    });
  }

  // ───────────────────────────────────────────── loop ─────────────────────────────────────────────

  private async run(): Promise<void> {
    const { INGEST_NODE_REFRESH_MS, INGEST_CLAIM_IDLE_MS, INGEST_BLOCK_MS } = this.options.settings;
    let failures = 0;
    while (!this.stopping) {
      try {
        const now = Date.now();
        if (now >= this.nextRefreshAt) {
          await this.refreshNodes();
          this.nextRefreshAt = now + INGEST_NODE_REFRESH_MS;
        }
        if (now >= this.nextClaimAt) {
          await this.claimIdle();
          this.nextClaimAt = now + INGEST_CLAIM_IDLE_MS;
        }
        if (this.streams.length === 0) {
          await this.sleep(Math.min(INGEST_BLOCK_MS, INGEST_NODE_REFRESH_MS));
          continue;
        }
        await this.readOnce();
        failures = 0;
      } catch (error) {
        failures++;
        if (/NOGROUP/.test(errorText(error))) {
          // A stream (and its group) was deleted: create the groups again on the next refresh.
          this.groups.clear();
          this.nextRefreshAt = 0;
        }
        this.options.log.warn({ err: error, failures }, 'status ingest: read failed; retrying');
        await this.sleep(Math.min(100 * 2 ** Math.min(failures, 10), MAX_FAILURE_BACKOFF_MS));
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return this.pause.sleep(ms);
  }

  private async ensureGroup(key: string): Promise<void> {
    try {
      await this.options.redis.xgroup('CREATE', key, STATUS_CONSUMER_GROUP, '$', 'MKSTREAM');
    } catch (error) {
      if (!/BUSYGROUP/.test(errorText(error))) throw error;
    }
    this.groups.add(key);
  }

  // ─────────────────────────────────────────── heartbeats ───────────────────────────────────────────

  /**
   * One UPDATE for every node of the batch whose heartbeat carries the node's epoch: lease, capacity, usage,
   * READY. A node whose heartbeat carries another epoch keeps its state; its set is published again so that it
   * learns the current epoch (and kills what it no longer owns).
   */
  private async applyHeartbeats(heartbeats: { nodeId: string; heartbeat: Heartbeat }[]): Promise<void> {
    if (heartbeats.length === 0) return;
    const column = <T>(f: (h: Heartbeat) => T): T[] => heartbeats.map((h) => f(h.heartbeat));
    const client = await this.options.pool.connect();
    let renewed: { id: string; name: string; epoch: number; previousStatus: string }[];
    try {
      await client.query('BEGIN');
      const result = await client.query<{ id: string; name: string; epoch: number; previousStatus: string }>(
        HEARTBEAT_SQL,
        [
          heartbeats.map((h) => h.nodeId),
          column((h) => h.epoch),
          column((h) => h.appliedVersion),
          column((h) => h.capacity.vcpus),
          column((h) => h.capacity.memoryMiB),
          column((h) => h.capacity.pods),
          column((h) => String(h.capacity.diskBytes)),
          column((h) => JSON.stringify(h.usage)),
          column((h) => h.diskPressure),
          column((h) => h.accelerator),
          this.options.settings.NODE_LEASE_GRACE_MS,
        ],
      );
      renewed = result.rows;
      const ready = renewed.filter((row) => row.previousStatus !== 'READY');
      if (ready.length > 0) {
        await this.insertEvents(
          client,
          ready.map((row) => ({
            tenantId: null,
            podId: null,
            nodeId: row.id,
            type: 'NORMAL',
            reason: 'NodeReady',
            message:
              row.previousStatus === 'NOT_READY'
                ? `Node ${row.name} is back under epoch ${row.epoch} and ready.`
                : `Node ${row.name} sent its first heartbeat and is ready.`,
            channelPodId: null,
          })),
        );
      }
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
    for (const row of renewed) {
      if (row.previousStatus !== 'READY') {
        this.options.log.info({ nodeId: row.id, previousStatus: row.previousStatus }, 'node ready');
      }
    }
    const renewedIds = new Set(renewed.map((row) => row.id));
    const stale = heartbeats.filter((h) => !renewedIds.has(h.nodeId));
    if (stale.length > 0) {
      this.stats.staleHeartbeats += stale.length;
      this.options.log.warn(
        { nodes: stale.map((h) => ({ nodeId: h.nodeId, epoch: h.heartbeat.epoch })) },
        'status ingest: heartbeat of another epoch (or an unknown node); lease not renewed, desired set re-published',
      );
      await this.options.publisher.publishMany(stale.map((h) => h.nodeId));
    }
  }

  // ─────────────────────────────────────────── pod statuses ───────────────────────────────────────────

  private async applyStatuses(items: StatusItem[], failed: Set<string>, after: AfterCommit): Promise<void> {
    if (items.length === 0) return;
    let pods: Map<string, PodState>;
    try {
      pods = await this.loadPods([...new Set(items.map((i) => i.status.podId))]);
    } catch (error) {
      this.options.log.error({ err: error }, 'status ingest: reading pods failed; entries stay pending');
      for (const item of items) failed.add(item.key);
      return;
    }
    // In stream order, so an older status of a pod is decided before a newer one of the same batch.
    for (const item of items) {
      this.stats.podStatuses++;
      try {
        await this.applyStatus(item, pods, after);
      } catch (error) {
        failed.add(item.key);
        this.options.log.error(
          { err: error, nodeId: item.nodeId, podId: item.status.podId },
          'status ingest: applying a pod status failed; the entry stays pending',
        );
      }
    }
  }

  private async applyStatus(item: StatusItem, pods: Map<string, PodState>, after: AfterCommit): Promise<void> {
    const { status, nodeId, epoch } = item;
    for (let attempt = 1; attempt <= STATUS_ATTEMPTS; attempt++) {
      const pod = pods.get(status.podId);
      if (pod === undefined) {
        this.stats.dropped++;
        this.options.log.debug({ nodeId, podId: status.podId }, 'status ingest: report about an unknown pod dropped');
        return;
      }
      const decision = decidePodStatus(pod, status, nodeId, epoch);
      if (decision.kind === 'drop') {
        this.stats.dropped++;
        this.options.log.info({ nodeId, podId: pod.id, epoch, why: decision.why }, 'status ingest: pod status dropped');
        return;
      }
      if (decision.kind === 'none' && item.events.length === 0) return;
      const result = await this.transact(pod, decision, item);
      if (result !== null) {
        if (decision.kind !== 'none') this.stats.applied++;
        for (const id of result.nodes) after.nodes.add(id);
        after.events.push(...result.events);
        if (result.pod === null) pods.delete(pod.id);
        else pods.set(pod.id, result.pod);
        return;
      }
      // The row changed since it was read: read it again and decide again.
      const fresh = await this.loadPods([pod.id]);
      const row = fresh.get(pod.id);
      if (row === undefined) pods.delete(pod.id);
      else pods.set(pod.id, row);
    }
    this.stats.conflicts++;
    this.options.log.warn(
      { nodeId, podId: status.podId },
      'status ingest: pod kept changing; status left to the next report',
    );
  }

  private async loadPods(ids: string[]): Promise<Map<string, PodState>> {
    if (ids.length === 0) return new Map();
    const { rows } = await this.options.pool.query<PodRow>(
      `SELECT ${POD_COLUMNS} FROM pods p WHERE p.id = ANY($1::uuid[])`,
      [ids],
    );
    return new Map(rows.map((row) => [row.id, { ...row, imageDigests: stringRecord(row.imageDigests) }]));
  }

  /**
   * One transaction: the report's own events, then the decision's conditional change with its side effects.
   * Returns null (rolled back) when the pod is no longer as read.
   */
  private async transact(
    pod: PodState,
    decision: Exclude<PodDecision, { kind: 'drop' }>,
    item: StatusItem,
  ): Promise<{ pod: PodState | null; nodes: string[]; events: PodEventMessage[] } | null> {
    const client = await this.options.pool.connect();
    try {
      await client.query('BEGIN');
      // The report's own events first (linked to the pod while its row exists: a removal unlinks them).
      const reported = await this.insertEvents(
        client,
        item.events.map((e) => ({
          tenantId: pod.tenantId,
          podId: pod.id,
          nodeId: item.nodeId,
          type: e.type,
          reason: e.reason.slice(0, 100),
          message: e.message.slice(0, 2000),
          channelPodId: pod.id,
        })),
      );
      const applied = await this.applyDecision(client, pod, decision, item);
      if (applied === null) {
        await client.query('ROLLBACK');
        return null;
      }
      const inserted = [...reported, ...(await this.insertEvents(client, applied.events))];
      await client.query('COMMIT');
      return { pod: applied.pod, nodes: applied.nodes, events: inserted };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  private async applyDecision(
    client: pg.PoolClient,
    pod: PodState,
    decision: Exclude<PodDecision, { kind: 'drop' }>,
    item: StatusItem,
  ): Promise<{ pod: PodState | null; nodes: string[]; events: EventRow[] } | null> {
    const asRead = [pod.id, pod.phase, pod.generation, pod.nodeId, pod.nodeEpoch, pod.placement];
    const event = (type: 'NORMAL' | 'WARNING', reason: string, message: string): EventRow => ({
      tenantId: pod.tenantId,
      podId: pod.id,
      nodeId: item.nodeId,
      type,
      reason,
      message,
      channelPodId: pod.id,
    });
    switch (decision.kind) {
      case 'none':
        return { pod, nodes: [], events: [] };

      case 'progress': {
        // Digests change the node's desired set (the entry carries them): lock the node first, as placement does.
        if (decision.imageDigests !== null) await this.lockNode(client, item.nodeId);
        const updated = await client.query(
          `UPDATE pods SET phase = COALESCE($7::"PodPhase", phase),
                  "observedGeneration" = GREATEST("observedGeneration", $8),
                  "imageDigests" = COALESCE($9::jsonb, "imageDigests"),
                  "startedAt" = CASE WHEN $7 = 'RUNNING' THEN now() ELSE "startedAt" END,
                  accelerator = $10::"Accelerator",
                  reason = CASE WHEN $7 IS NULL THEN reason ELSE $11 END,
                  message = CASE WHEN $7 IS NULL THEN message ELSE $12 END,
                  "updatedAt" = now()
            WHERE ${POD_IS_AS_READ}`,
          [
            ...asRead,
            decision.to,
            decision.observedGeneration,
            decision.imageDigests === null ? null : JSON.stringify(decision.imageDigests),
            decision.accelerator,
            decision.reason,
            decision.message,
          ],
        );
        if (updated.rowCount !== 1) return null;
        await this.updateContainers(client, pod.id, decision.containers);
        const nodes: string[] = [];
        if (decision.imageDigests !== null) {
          await client.query(
            `UPDATE nodes SET "desiredVersion" = "desiredVersion" + 1, "updatedAt" = now() WHERE id = $1`,
            [item.nodeId],
          );
          nodes.push(item.nodeId);
        }
        const events =
          decision.to === 'RUNNING'
            ? [
                event(
                  'NORMAL',
                  'Started',
                  `Pod ${pod.name} is running${decision.accelerator === null ? '' : ` (accelerator ${decision.accelerator})`}.`,
                ),
              ]
            : [];
        return {
          pod: {
            ...pod,
            phase: decision.to ?? pod.phase,
            observedGeneration: decision.observedGeneration,
            imageDigests: decision.imageDigests ?? pod.imageDigests,
            accelerator: decision.accelerator,
            containers: mergeContainers(pod, decision.containers),
          },
          nodes,
          events,
        };
      }

      case 'finish': {
        await this.lockNode(client, item.nodeId);
        const updated = await client.query(
          `UPDATE pods SET phase = $7::"PodPhase", "nodeId" = NULL, "finishedAt" = now(),
                  "observedGeneration" = GREATEST("observedGeneration", $8), reason = $9, message = $10,
                  "updatedAt" = now()
            WHERE ${POD_IS_AS_READ}`,
          [
            ...asRead,
            decision.to,
            decision.observedGeneration,
            decision.reason,
            decision.message?.slice(0, 1000) ?? null,
          ],
        );
        if (updated.rowCount !== 1) return null;
        await this.releaseNode(client, item.nodeId, pod);
        await this.updateContainers(client, pod.id, decision.containers);
        const events = [finishEvent(pod, decision, event)];
        return {
          pod: { ...pod, phase: decision.to, nodeId: null, observedGeneration: decision.observedGeneration },
          nodes: [item.nodeId],
          events,
        };
      }

      case 'replace': {
        await this.lockNode(client, item.nodeId);
        const { REPLACE_BACKOFF_BASE_MS, REPLACE_BACKOFF_MAX_MS } = this.options.settings;
        const backoff = replaceBackoffMs(pod.lostCount, REPLACE_BACKOFF_BASE_MS, REPLACE_BACKOFF_MAX_MS);
        const message = `The VM was lost${decision.message === null ? '' : `: ${decision.message}`}`.slice(0, 1000);
        const updated = await client.query<{ placeAfter: Date; lostCount: number }>(
          `UPDATE pods SET phase = 'PENDING', "nodeId" = NULL, reason = 'VMLost', message = $7,
                  "lostCount" = "lostCount" + 1, "placeAfter" = now() + $8::int * interval '1 millisecond',
                  "observedGeneration" = GREATEST("observedGeneration", $9), "updatedAt" = now()
            WHERE ${POD_IS_AS_READ}
           RETURNING "placeAfter", "lostCount"`,
          [...asRead, message, backoff, decision.observedGeneration],
        );
        const row = updated.rows[0];
        if (row === undefined) return null;
        await this.releaseNode(client, item.nodeId, pod);
        await this.updateContainers(client, pod.id, decision.containers);
        await client.query(
          `INSERT INTO outbox ("aggregateType", "aggregateId", "tenantId", generation, kind, payload)
           VALUES ('pod', $1, $2, $3, $4, $5::jsonb)`,
          [
            pod.id,
            pod.tenantId,
            pod.generation,
            JobName.PodPlacementRequested,
            JSON.stringify({ placement: pod.placement, reason: 'VMLost' }),
          ],
        );
        return {
          pod: { ...pod, phase: 'PENDING', nodeId: null, lostCount: row.lostCount },
          nodes: [item.nodeId],
          events: [
            event(
              'WARNING',
              'VMLost',
              `${message}. The pod (restart policy ${pod.restartPolicy}) is placed again after ` +
                `${row.placeAfter.toISOString()} (loss ${row.lostCount}, backoff ${backoff} ms).`,
            ),
          ],
        };
      }

      case 'remove': {
        await this.lockNode(client, item.nodeId);
        const deleted = await client.query(`DELETE FROM pods WHERE ${POD_IS_AS_READ}`, asRead);
        if (deleted.rowCount !== 1) return null;
        await this.releaseNode(client, item.nodeId, pod);
        await releaseQuota(client, pod.tenantId, pod, this.options.log);
        await client.query(
          `INSERT INTO outbox ("aggregateType", "aggregateId", "tenantId", generation, kind, payload)
           VALUES ('pod', $1, $2, $3, $4, $5::jsonb)`,
          [
            pod.id,
            pod.tenantId,
            pod.generation,
            JobName.PodDeleted,
            JSON.stringify({
              transition: 18,
              previousPhase: pod.phase,
              phase: null,
              desiredState: 'DELETED',
              nodeId: item.nodeId,
              nodeEpoch: pod.nodeEpoch,
              releasedIp: pod.ip,
            }),
          ],
        );
        return {
          pod: null,
          nodes: [item.nodeId],
          events: [
            {
              tenantId: pod.tenantId,
              podId: null,
              nodeId: null,
              type: 'NORMAL',
              reason: 'Deleted',
              message: `Pod ${pod.name} deleted; its VM is gone, its address ${pod.ip ?? '(none)'} and its quota were released.`,
              channelPodId: pod.id,
            },
          ],
        };
      }
    }
  }

  private async lockNode(client: pg.PoolClient, nodeId: string): Promise<void> {
    await client.query('SELECT 1 FROM nodes WHERE id = $1 FOR UPDATE', [nodeId]);
  }

  /** The pod's reservation (the same arithmetic placement reserved with) goes back to the node; a new set. */
  private async releaseNode(client: pg.PoolClient, nodeId: string, pod: PodState): Promise<void> {
    const r = reservationFor(pod, { vmOverheadMiB: this.options.vmOverheadMiB });
    await client.query(RELEASE_NODE_SQL, [nodeId, r.vcpus, r.memoryMiB, r.pods]);
  }

  private async updateContainers(client: pg.PoolClient, podId: string, updates: ContainerUpdate[]): Promise<void> {
    if (updates.length === 0) return;
    await client.query(
      `UPDATE containers c
          SET phase = u.phase::"ContainerPhase", "exitCode" = u."exitCode", signal = u.signal, reason = u.reason,
              "restartCount" = GREATEST(c."restartCount", u."restartCount"), "startedAt" = u."startedAt",
              "finishedAt" = u."finishedAt"
         FROM unnest($2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::int[], $8::timestamptz[],
                     $9::timestamptz[])
           AS u(name, phase, "exitCode", signal, reason, "restartCount", "startedAt", "finishedAt")
        WHERE c."podId" = $1 AND c.name = u.name`,
      [
        podId,
        updates.map((u) => u.name),
        updates.map((u) => u.phase),
        updates.map((u) => u.exitCode),
        updates.map((u) => u.signal),
        updates.map((u) => u.reason),
        updates.map((u) => u.restartCount),
        updates.map((u) => u.startedAt),
        updates.map((u) => u.finishedAt),
      ],
    );
  }

  private async insertEvents(client: pg.PoolClient, events: EventRow[]): Promise<PodEventMessage[]> {
    if (events.length === 0) return [];
    const { rows } = await client.query<{ id: string; createdAt: Date; ord: string }>(
      `INSERT INTO events ("tenantId", "podId", "nodeId", type, reason, message)
       SELECT e."tenantId", e."podId", e."nodeId", e.type::"EventType", e.reason, e.message
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[])
              WITH ORDINALITY AS e("tenantId", "podId", "nodeId", type, reason, message, ord)
        ORDER BY e.ord
       RETURNING id::text AS id, "createdAt"`,
      [
        events.map((e) => e.tenantId),
        events.map((e) => e.podId),
        events.map((e) => e.nodeId),
        events.map((e) => e.type),
        events.map((e) => e.reason),
        events.map((e) => e.message.slice(0, 2000)),
      ],
    );
    // Rows come back in insertion order (ids ascending).
    const sorted = [...rows].sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
    return events.flatMap((e, i) => {
      const row = sorted[i];
      if (row === undefined || e.channelPodId === null || e.tenantId === null) return [];
      return [
        {
          id: row.id,
          tenantId: e.tenantId,
          podId: e.channelPodId,
          type: e.type,
          reason: e.reason,
          message: e.message.slice(0, 2000),
          createdAt: row.createdAt.toISOString(),
        },
      ];
    });
  }

  /** After the commits: a failure to publish is logged (the rows are the record, ADR-005). */
  private async publishEvents(events: PodEventMessage[]): Promise<void> {
    await publishPodEvents(this.options.producer, events, this.options.log);
  }
}

function mergeContainers(pod: PodState, updates: ContainerUpdate[]): PodState['containers'] {
  const byName = new Map(updates.map((u) => [u.name, u]));
  return pod.containers.map((c) => {
    const u = byName.get(c.name);
    return u === undefined ? c : { ...c, ...u, restartCount: Math.max(c.restartCount, u.restartCount) };
  });
}

function finishEvent(
  pod: PodState,
  decision: Extract<PodDecision, { kind: 'finish' }>,
  event: (type: 'NORMAL' | 'WARNING', reason: string, message: string) => EventRow,
): EventRow {
  const detail = decision.message === null ? '' : `: ${decision.message}`;
  switch (decision.transition) {
    case 7:
      return event('NORMAL', 'Completed', `Pod ${pod.name} completed: every container exited 0.`);
    case 8:
      return event(
        'WARNING',
        'Failed',
        pod.phase === 'RUNNING'
          ? `Pod ${pod.name} failed (${decision.reason ?? 'Error'})${detail}.`
          : `Pod ${pod.name} could not start (${decision.reason ?? 'Error'})${detail}.`,
      );
    case 10:
      return event('WARNING', 'VMLost', `The VM of pod ${pod.name} was lost; restart policy NEVER: the pod failed.`);
    case 14:
      return event(
        'NORMAL',
        'Stopped',
        `Pod ${pod.name} stopped; its VM is gone. It keeps its address and quota.${decision.message === null ? '' : ` ${decision.message}`}`,
      );
  }
}
