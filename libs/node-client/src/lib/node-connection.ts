import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { PodLogEntry } from '@caas/log-stream-contract';
import { POD_LOG_STREAM_MAXLEN, POD_LOG_STREAM_TTL_SECONDS, encodeLogEntry } from '@caas/log-stream-contract';
import type { DesiredSet, DesiredSetReady, NodeJoinResponse, NodeReport } from '@caas/queue-contracts';
import {
  DESIRED_SET_READY_JOB,
  NodeQueueName,
  STATUS_FIELD,
  STATUS_STREAM_MAXLEN,
  desiredSetReadySchema,
  nodeKeys,
  nodeLogStreamKey,
  parseDesiredSet,
} from '@caas/queue-contracts';

/** A log stream's TTL is refreshed at most this often. */
const LOG_TTL_REFRESH_MS = 60_000;

/** What a node keeps from its join (on disk, root-only) to talk to the control plane. */
export type NodeIdentity = Pick<NodeJoinResponse, 'nodeId' | 'name' | 'epoch' | 'redis' | 'queuePrefix'>;

export interface NodeConnectionOptions {
  identity: NodeIdentity;
  /** Redis host and port (`redis://host:port[/db]`); the node's own user and password are added. */
  redisUrl: string;
  /** Called when the Redis connection reports an error (it reconnects by itself). */
  onError?: (error: Error) => void;
}

/**
 * The agent side of the node contract (ADR-009) over the node's own Redis user: read the desired set, hear
 * "version N is ready" on the node's queue, append heartbeats and pod reports to the node's status stream. Every
 * key it touches is one of `nodeKeys(nodeId)`; the node's ACL refuses anything else.
 */
export class NodeConnection {
  private readonly redis: Redis;
  private readonly keys: ReturnType<typeof nodeKeys>;
  private readonly base: string;
  /** When each log stream's TTL was last set (pruned as entries grow old). */
  private readonly logTtlSetAt = new Map<string, number>();
  private worker: Worker | undefined;
  private workerRedis: Redis | undefined;
  /**
   * ioredis keeps a connection whose handshake `AUTH` failed open, as whatever user Redis left it (`default`):
   * an explicit `AUTH` that must succeed comes before the first command, so a wrong or revoked password fails
   * loudly instead of silently acting as another user.
   */
  private readonly authenticated: Promise<void>;

  constructor(private readonly options: NodeConnectionOptions) {
    const { identity } = options;
    this.base = baseOf(identity);
    this.keys = nodeKeys(identity.nodeId, this.base);
    this.redis = this.connect(2);
    this.authenticated = this.redis.auth(identity.redis.username, identity.redis.password).then(() => undefined);
    this.authenticated.catch(() => undefined);
  }

  get nodeId(): string {
    return this.options.identity.nodeId;
  }

  /** The node's current desired set, or null before the scheduler has published one. */
  async readDesiredSet(): Promise<DesiredSet | null> {
    await this.authenticated;
    const raw = await this.redis.get(this.keys.desiredSet);
    if (raw === null) return null;
    const parsed = parseDesiredSet(raw);
    if (!parsed.ok) throw new Error(`desired set of node ${this.nodeId} is invalid: ${parsed.error}`);
    if (parsed.set.nodeId !== this.nodeId) throw new Error(`desired set names node ${parsed.set.nodeId}`);
    return parsed.set;
  }

  /**
   * Calls `handler` for every announcement on the node's queue (one at a time). Announcements only say that a
   * newer set exists: the handler should read the whole set, and the agent should also re-read it on a timer.
   */
  onAnnouncement(handler: (ready: DesiredSetReady) => Promise<void>): void {
    if (this.worker !== undefined) throw new Error('onAnnouncement: already listening');
    this.workerRedis = this.connect(null);
    this.worker = new Worker(
      NodeQueueName.Desired,
      async (job) => {
        if (job.name !== DESIRED_SET_READY_JOB) return;
        const ready = desiredSetReadySchema.safeParse(job.data);
        if (ready.success) await handler(ready.data);
      },
      // No `INFO` for the node's user (see `nodeAclRules`): BullMQ must not ask for the server version.
      {
        connection: this.workerRedis,
        prefix: this.keys.prefix,
        concurrency: 1,
        skipVersionCheck: true,
        autorun: false,
      },
    );
    const worker = this.worker;
    worker.on('error', (error) => this.options.onError?.(error));
    // Only once the credentials are known good (see `authenticated`).
    this.authenticated.then(
      () => void worker.run().catch((error: Error) => this.options.onError?.(error)),
      (error: Error) => this.options.onError?.(error),
    );
  }

  /** Appends a heartbeat or pod report to the node's status stream (capped). */
  async report(report: NodeReport): Promise<void> {
    await this.authenticated;
    await this.redis.xadd(
      this.keys.status,
      'MAXLEN',
      '~',
      STATUS_STREAM_MAXLEN,
      '*',
      STATUS_FIELD,
      JSON.stringify(report),
    );
  }

  /**
   * Appends one pod's output lines to the node's log stream of that pod (`nodeLogStreamKey`, ADR-005 entries), in
   * one pipeline: an `XADD … MAXLEN ~ POD_LOG_STREAM_MAXLEN` per entry, then `EXPIRE POD_LOG_STREAM_TTL_SECONDS`
   * (at most once a minute per stream). Rejects with the first error of the pipeline.
   */
  async appendLogs(podId: string, entries: readonly PodLogEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const key = nodeLogStreamKey(this.nodeId, podId, this.base);
    await this.authenticated;
    const now = Date.now();
    const refreshTtl = now - (this.logTtlSetAt.get(key) ?? Number.NEGATIVE_INFINITY) >= LOG_TTL_REFRESH_MS;
    const pipeline = this.redis.pipeline();
    for (const entry of entries) {
      pipeline.xadd(key, 'MAXLEN', '~', POD_LOG_STREAM_MAXLEN, '*', ...encodeLogEntry(entry));
    }
    if (refreshTtl) pipeline.expire(key, POD_LOG_STREAM_TTL_SECONDS);
    const results = (await pipeline.exec()) ?? [];
    const failed = results.find(([error]) => error !== null);
    if (failed?.[0]) throw failed[0];
    if (refreshTtl) {
      if (this.logTtlSetAt.size >= 1024) {
        for (const [k, at] of this.logTtlSetAt) if (now - at >= LOG_TTL_REFRESH_MS) this.logTtlSetAt.delete(k);
      }
      this.logTtlSetAt.set(key, now);
    }
  }

  async close(): Promise<void> {
    await this.worker?.close().catch(() => undefined);
    await Promise.allSettled([this.redis.quit(), this.workerRedis?.quit()]);
  }

  private connect(maxRetriesPerRequest: number | null): Redis {
    const redis = new Redis(this.options.redisUrl, {
      username: this.options.identity.redis.username,
      password: this.options.identity.redis.password,
      maxRetriesPerRequest,
      // The node's ACL allows neither `INFO` (ioredis's ready check) nor `CLIENT SETINFO`.
      enableReadyCheck: false,
      disableClientInfo: true,
    });
    redis.on('error', (error: Error) => this.options.onError?.(error));
    return redis;
  }
}

/** `queuePrefix` is `<base>:node:<id>`; the keys are derived from the base. */
function baseOf(identity: NodeIdentity): string {
  const suffix = `:node:${identity.nodeId}`;
  if (!identity.queuePrefix.endsWith(suffix)) {
    throw new Error(`queue prefix ${identity.queuePrefix} does not belong to node ${identity.nodeId}`);
  }
  return identity.queuePrefix.slice(0, -suffix.length);
}
