import type { Redis } from 'ioredis';
import type { PodLogRecord } from '@caas/log-stream-contract';
import { decodeLogEntry } from '@caas/log-stream-contract';
import { POD_LOG_LIMITS } from './pod-log-limits';

/** Where a follower starts: the stream it reads (null while the pod is placed nowhere) and the position. */
export interface FollowStart {
  /** The log stream of the node the pod is placed on, or null. */
  key: string | null;
  /** The last entry already seen: only entries after it are read. */
  cursor: string;
  /** Redis' clock (ms) when `key` was looked up. */
  redisTimeMs: number;
}

/** Redis' clock in ms (stream ids are made from it). */
export async function redisTimeMs(redis: Redis): Promise<number> {
  const [seconds, micros] = (await redis.time()) as unknown as [string | number, string | number];
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

/**
 * New entries of a pod's output, read with `XREAD BLOCK` on a Redis connection of its own (a blocking read
 * holds its connection) from the log stream of the node the pod is placed on. Pull-based: the next batch is
 * read only when the subscriber has taken the previous one, so a slow subscriber costs no memory here — the
 * stream is the buffer, and what MAXLEN trims meanwhile is lost to it. `return()` (unsubscribe, disconnect)
 * drops the connection at once, which also ends a read in progress.
 *
 * The pod's node is looked up again (`locate`) at least every `followBlockMs`: when the pod was re-placed,
 * the follower moves to the new node's stream, from the Redis time of the previous look-up (the new node can
 * only have written the pod's output after that placement committed, hence after that look-up). While the pod
 * is placed nowhere it keeps the last node's stream (its last lines may still arrive).
 */
export class LogFollower implements AsyncIterableIterator<PodLogRecord[]> {
  private closed = false;
  private key: string | null;
  private cursor: string;
  private locatedAtRedisMs: number;
  private locatedAt = Date.now();
  private wake: (() => void) | undefined;

  constructor(
    private readonly connection: Redis,
    /** The log stream key of the node the pod is placed on now, or null. */
    private readonly locate: () => Promise<string | null>,
    start: FollowStart,
    private readonly container: string | null,
    private readonly onClose: () => void,
  ) {
    this.key = start.key;
    this.cursor = start.cursor;
    this.locatedAtRedisMs = start.redisTimeMs;
  }

  async next(): Promise<IteratorResult<PodLogRecord[]>> {
    while (!this.closed) {
      let reply: [string, [string, string[]][]][] | null;
      try {
        if (this.key === null || Date.now() - this.locatedAt >= POD_LOG_LIMITS.followBlockMs) await this.relocate();
        if (this.closed) break;
        const key = this.key;
        if (key === null) {
          await this.pause(POD_LOG_LIMITS.followUnplacedPollMs);
          continue;
        }
        reply = (await this.connection.xread(
          'COUNT',
          POD_LOG_LIMITS.followBatch,
          'BLOCK',
          POD_LOG_LIMITS.followBlockMs,
          'STREAMS',
          key,
          this.cursor,
        )) as [string, [string, string[]][]][] | null;
        if (reply === null) this.locatedAt = 0; // a quiet stream: look the node up again before blocking anew
      } catch (error) {
        if (this.closed) break;
        this.close();
        throw error;
      }
      const records: PodLogRecord[] = [];
      for (const [id, fields] of reply?.[0]?.[1] ?? []) {
        this.cursor = id;
        const record = decodeLogEntry(id, fields);
        if (record !== null && (this.container === null || record.container === this.container)) records.push(record);
      }
      if (records.length > 0 && !this.closed) return { value: records, done: false };
    }
    return { value: undefined, done: true };
  }

  async return(): Promise<IteratorResult<PodLogRecord[]>> {
    this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<PodLogRecord[]> {
    return this;
  }

  private async relocate(): Promise<void> {
    const previous = this.locatedAtRedisMs;
    const now = await redisTimeMs(this.connection);
    const key = await this.locate();
    this.locatedAt = Date.now();
    this.locatedAtRedisMs = now;
    if (key !== null && key !== this.key) {
      this.key = key;
      this.cursor = `${Math.max(0, previous - 1)}-0`;
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.wake?.();
    this.connection.disconnect();
    this.onClose();
  }
}
