import type { OnApplicationShutdown } from '@nestjs/common';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { PrismaClient } from '@caas/db';
import type { PodLogRecord } from '@caas/log-stream-contract';
import { decodeLogEntry, isContainerName } from '@caas/log-stream-contract';
import { nodeLogStreamKey } from '@caas/queue-contracts';
import { publicGraphQLError } from '../common/graphql/graphql-options';
import { assertId } from '../common/graphql/ids';
import { PRISMA, REDIS } from '../common/infra/tokens';
import type { ApiConfig } from '../config/api-config';
import { API_CONFIG } from '../config/api-config';
import type { FollowPodLogsArgs, LogLine, PodLogsArgs } from './dtos/log-line.dto';
import { toLogLine } from './dtos/log-line.dto';
import { PodLogException, PodLogExceptionCode } from './pod-log.exception';
import { LogFollower, redisTimeMs } from './utils/log-follower.util';
import { podLogNodes, tenantPodNode } from './utils/pod-access.util';
import { POD_LOG_LIMITS } from './utils/pod-log-limits';

const invalid = (message: string) => new PodLogException(PodLogExceptionCode.INVALID_LOG_QUERY, message);

function checkContainer(container: string | null | undefined): string | null {
  if (container === undefined || container === null) return null;
  if (!isContainerName(container)) throw invalid('container must be a container name (a DNS label).');
  return container;
}

/** Capture time, then stream id (`<ms>-<n>`), ascending. */
function byTime(a: PodLogRecord, b: PodLogRecord): number {
  if (a.timeMs !== b.timeMs) return a.timeMs - b.timeMs;
  const [aMs = 0, aSeq = 0] = a.id.split('-').map(Number);
  const [bMs = 0, bSeq = 0] = b.id.split('-').map(Number);
  return aMs !== bMs ? aMs - bMs : aSeq - bSeq;
}

/**
 * Merges streams, each oldest first, into one: each stream keeps its own (append) order, and across streams the
 * earlier head by `byTime` goes first. With one stream, that stream as it is.
 */
export function mergeStreams(streams: PodLogRecord[][]): PodLogRecord[] {
  const heads = streams.map(() => 0);
  const merged: PodLogRecord[] = [];
  for (;;) {
    let pick = -1;
    streams.forEach((stream, i) => {
      const head = stream[heads[i]];
      const best = pick < 0 ? undefined : streams[pick][heads[pick]];
      if (head !== undefined && (best === undefined || byTime(head, best) < 0)) pick = i;
    });
    if (pick < 0) return merged;
    merged.push(streams[pick][heads[pick]++]);
  }
}

/**
 * Pod output, read from the log streams the node agents write under their own prefix
 * (`<QUEUE_PREFIX>:node:<nodeId>:logs:<podId>`, `nodeLogStreamKey`; entries per `@caas/log-stream-contract`;
 * see docs/adr-005-logs-and-events.md) — only the streams of nodes the pod was placed on, since a node can write
 * any key under its prefix. Every read is bounded, and only ever for a pod of the caller's tenant.
 */
@Injectable()
export class PodLogService implements OnApplicationShutdown {
  private readonly logger = new Logger(PodLogService.name);
  /** Open log subscriptions of this process, each with its Redis connection; counted per tenant too. */
  private readonly followers = new Set<LogFollower>();
  private readonly followersPerTenant = new Map<string, number>();

  constructor(
    @Inject(PRISMA) private readonly prisma: PrismaClient,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  /**
   * The last `tail` lines (oldest first) matching the filters, over the streams of every node the pod was
   * placed on (`podLogNodes`): each stream's newest `tail` matches (`scan`), merged by capture time then
   * stream id, each stream keeping its own order (`mergeStreams`).
   */
  async read(tenantId: string, args: PodLogsArgs): Promise<LogLine[]> {
    const podId = assertId(args.podId, 'podId');
    const container = checkContainer(args.container);
    const tail = args.tail ?? POD_LOG_LIMITS.defaultTail;
    if (!Number.isInteger(tail) || tail < POD_LOG_LIMITS.minTail || tail > POD_LOG_LIMITS.maxTail) {
      throw invalid(`tail must be from ${POD_LOG_LIMITS.minTail} to ${POD_LOG_LIMITS.maxTail}; it was ${tail}.`);
    }
    const sinceMs = args.since === undefined || args.since === null ? null : args.since.getTime();
    if (sinceMs !== null && !Number.isFinite(sinceMs)) throw invalid('since is not a valid date and time.');
    const nodes = await podLogNodes(this.prisma, tenantId, podId);
    if (nodes.length === 0) return [];

    // Entries are appended in time order by Redis' clock; the node's capture time may run a little ahead.
    const lowest = sinceMs === null ? '-' : String(Math.max(0, sinceMs - POD_LOG_LIMITS.sinceSkewMs));
    const matches = (record: PodLogRecord) =>
      (container === null || record.container === container) && (sinceMs === null || record.timeMs >= sinceMs);
    const budget = Math.max(POD_LOG_LIMITS.scanBatch, Math.floor(POD_LOG_LIMITS.maxScanned / nodes.length));
    const perNode = await Promise.all(
      nodes.map((nodeId) =>
        this.scan(nodeLogStreamKey(nodeId, podId, this.config.QUEUE_PREFIX), {
          tail,
          lowest,
          filtered: container !== null || sinceMs !== null,
          matches,
          budget,
        }),
      ),
    );
    // Each node's newest `tail` matches; merged, the pod's newest `tail` are among them.
    const merged = mergeStreams(perNode.map((found) => found.reverse()));
    return merged.slice(Math.max(0, merged.length - tail)).map(toLogLine);
  }

  /**
   * One stream's last `tail` matching entries, newest first: XREVRANGE from the newest entry back, a page at a
   * time, until enough match, the `lowest` bound is reached or `budget` entries were read.
   */
  private async scan(
    key: string,
    query: {
      tail: number;
      lowest: string;
      filtered: boolean;
      matches: (record: PodLogRecord) => boolean;
      budget: number;
    },
  ): Promise<PodLogRecord[]> {
    const { tail, lowest, filtered, matches, budget } = query;
    const found: PodLogRecord[] = [];
    let highest = '+';
    let scanned = 0;
    while (found.length < tail && scanned < budget) {
      const wanted = filtered ? POD_LOG_LIMITS.scanBatch : tail - found.length;
      const count = Math.min(wanted, budget - scanned);
      const entries = await this.redis.xrevrange(key, highest, lowest, 'COUNT', count);
      scanned += entries.length;
      for (const [id, fields] of entries) {
        const record = decodeLogEntry(id, fields);
        if (record !== null && matches(record)) found.push(record);
        if (found.length === tail) break;
      }
      const oldest = entries.at(-1);
      if (entries.length < count || oldest === undefined) break;
      highest = `(${oldest[0]}`;
    }
    return found;
  }

  /**
   * Lines appended after this call, in batches, until the subscriber leaves, from the stream of the node the
   * pod is placed on (following it to its next node when it is re-placed: `LogFollower`). The position is
   * taken now (the stream's last id, or its beginning when it does not exist yet), so nothing appended between
   * the subscription and the first read is missed.
   */
  async follow(tenantId: string, args: FollowPodLogsArgs): Promise<AsyncIterableIterator<LogLine[]>> {
    const podId = assertId(args.podId, 'podId');
    const container = checkContainer(args.container);
    await tenantPodNode(this.prisma, tenantId, podId);

    const tenantCount = this.followersPerTenant.get(tenantId) ?? 0;
    if (
      this.followers.size >= POD_LOG_LIMITS.maxFollowersPerProcess ||
      tenantCount >= POD_LOG_LIMITS.maxFollowersPerTenant
    ) {
      throw new PodLogException(
        PodLogExceptionCode.TOO_MANY_LOG_STREAMS,
        'Too many log subscriptions are open; close some and retry.',
      );
    }
    this.followersPerTenant.set(tenantId, tenantCount + 1);
    const release = () => {
      const count = (this.followersPerTenant.get(tenantId) ?? 1) - 1;
      if (count > 0) this.followersPerTenant.set(tenantId, count);
      else this.followersPerTenant.delete(tenantId);
    };

    const keyOf = (nodeId: string | null) =>
      nodeId === null ? null : nodeLogStreamKey(nodeId, podId, this.config.QUEUE_PREFIX);
    // The current node only, looked up without throwing: a pod deleted meanwhile keeps its last stream.
    const locate = async () =>
      keyOf(
        (await this.prisma.pod.findFirst({ where: { id: podId, tenantId }, select: { nodeId: true } }))?.nodeId ?? null,
      );
    let start: { key: string | null; cursor: string; redisTimeMs: number };
    try {
      const redisTime = await redisTimeMs(this.redis);
      const key = await locate();
      const [last] = key === null ? [] : await this.redis.xrevrange(key, '+', '-', 'COUNT', 1);
      start = { key, cursor: last?.[0] ?? '0-0', redisTimeMs: redisTime };
    } catch (error) {
      release();
      throw error;
    }
    const connection = this.redis.duplicate({ connectionName: `caas:api:pod-logs:${podId}` });
    connection.on('error', (error: Error) => this.logger.warn(`log subscription of pod ${podId}: ${error.message}`));
    const follower: LogFollower = new LogFollower(connection, locate, start, container, () => {
      this.followers.delete(follower);
      release();
    });
    this.followers.add(follower);
    return this.lines(follower);
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all([...this.followers].map((follower) => follower.return()));
  }

  /** The follower's batches as GraphQL values; a failure ends the subscription with a public error. */
  private lines(follower: LogFollower): AsyncIterableIterator<LogLine[]> {
    const logger = this.logger;
    return {
      async next() {
        try {
          const result = await follower.next();
          return result.done === true ? result : { value: result.value.map(toLogLine), done: false };
        } catch (error) {
          throw publicGraphQLError(error, (internal) => logger.error(`log subscription failed: ${String(internal)}`));
        }
      },
      async return(): Promise<IteratorResult<LogLine[]>> {
        await follower.return();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }
}
