import type { Redis } from 'ioredis';
import type { PodLogRecord } from '@caas/log-stream-contract';
import { decodeLogEntry } from '@caas/log-stream-contract';
import { POD_LOG_LIMITS } from './pod-log-limits';

/**
 * New entries of one pod log stream, read with `XREAD BLOCK` on a Redis connection of its own (a blocking
 * read holds its connection). Pull-based: the next batch is read only when the subscriber has taken the
 * previous one, so a slow subscriber costs no memory here — the stream is the buffer, and what MAXLEN
 * trims meanwhile is lost to it. `return()` (unsubscribe, disconnect) drops the connection at once, which
 * also ends a read in progress.
 */
export class LogFollower implements AsyncIterableIterator<PodLogRecord[]> {
  private closed = false;

  constructor(
    private readonly connection: Redis,
    private readonly key: string,
    /** The last entry already seen: only entries after it are read. */
    private cursor: string,
    private readonly container: string | null,
    private readonly onClose: () => void,
  ) {}

  async next(): Promise<IteratorResult<PodLogRecord[]>> {
    while (!this.closed) {
      let reply: [string, [string, string[]][]][] | null;
      try {
        reply = (await this.connection.xread(
          'COUNT',
          POD_LOG_LIMITS.followBatch,
          'BLOCK',
          POD_LOG_LIMITS.followBlockMs,
          'STREAMS',
          this.key,
          this.cursor,
        )) as [string, [string, string[]][]][] | null;
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

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.connection.disconnect();
    this.onClose();
  }
}
