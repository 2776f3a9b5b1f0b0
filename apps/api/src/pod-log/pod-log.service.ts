import type { OnApplicationShutdown } from '@nestjs/common';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { PrismaClient } from '@caas/db';
import type { PodLogRecord } from '@caas/log-stream-contract';
import { decodeLogEntry, isContainerName, podLogStreamKey } from '@caas/log-stream-contract';
import { publicGraphQLError } from '../common/graphql/graphql-options';
import { assertId } from '../common/graphql/ids';
import { PRISMA, REDIS } from '../common/infra/tokens';
import type { FollowPodLogsArgs, LogLine, PodLogsArgs } from './dtos/log-line.dto';
import { toLogLine } from './dtos/log-line.dto';
import { PodLogException, PodLogExceptionCode } from './pod-log.exception';
import { LogFollower } from './utils/log-follower.util';
import { assertTenantPod } from './utils/pod-access.util';
import { POD_LOG_LIMITS } from './utils/pod-log-limits';

const invalid = (message: string) => new PodLogException(PodLogExceptionCode.INVALID_LOG_QUERY, message);

function checkContainer(container: string | null | undefined): string | null {
  if (container === undefined || container === null) return null;
  if (!isContainerName(container)) throw invalid('container must be a container name (a DNS label).');
  return container;
}

/**
 * Pod output, read from the pod's Redis stream (`caas:logs:pod:<podId>`, written by the node agent; see
 * `@caas/log-stream-contract` and docs/adr-005-logs-and-events.md). Every read is bounded, and only ever
 * for a pod of the caller's tenant.
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
  ) {}

  /**
   * The last `tail` lines (oldest first) matching the filters: XREVRANGE from the newest entry back, a page
   * at a time, until enough lines match, the `since` bound is reached or `maxScanned` entries were read.
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
    await assertTenantPod(this.prisma, tenantId, podId);

    const key = podLogStreamKey(podId);
    // Entries are appended in time order by Redis' clock; the node's capture time may run a little ahead.
    const lowest = sinceMs === null ? '-' : String(Math.max(0, sinceMs - POD_LOG_LIMITS.sinceSkewMs));
    const filtered = container !== null || sinceMs !== null;
    const matches = (record: PodLogRecord) =>
      (container === null || record.container === container) && (sinceMs === null || record.timeMs >= sinceMs);

    const found: PodLogRecord[] = [];
    let highest = '+';
    let scanned = 0;
    while (found.length < tail && scanned < POD_LOG_LIMITS.maxScanned) {
      const wanted = filtered ? POD_LOG_LIMITS.scanBatch : tail - found.length;
      const count = Math.min(wanted, POD_LOG_LIMITS.maxScanned - scanned);
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
    return found.reverse().map(toLogLine);
  }

  /**
   * Lines appended after this call, in batches, until the subscriber leaves. The position is taken now
   * (the stream's last id, or its beginning when it does not exist yet), so nothing appended between the
   * subscription and the first read is missed.
   */
  async follow(tenantId: string, args: FollowPodLogsArgs): Promise<AsyncIterableIterator<LogLine[]>> {
    const podId = assertId(args.podId, 'podId');
    const container = checkContainer(args.container);
    await assertTenantPod(this.prisma, tenantId, podId);

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

    const key = podLogStreamKey(podId);
    let cursor: string;
    try {
      const [last] = await this.redis.xrevrange(key, '+', '-', 'COUNT', 1);
      cursor = last?.[0] ?? '0-0';
    } catch (error) {
      release();
      throw error;
    }
    const connection = this.redis.duplicate({ connectionName: `caas:api:pod-logs:${podId}` });
    connection.on('error', (error: Error) => this.logger.warn(`log subscription of pod ${podId}: ${error.message}`));
    const follower: LogFollower = new LogFollower(connection, key, cursor, container, () => {
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
