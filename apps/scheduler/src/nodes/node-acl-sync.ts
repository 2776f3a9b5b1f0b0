import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { NodeUserSyncResult } from '@caas/node-acl';
import { syncNodeUsers } from '@caas/node-acl';
import { InterruptibleSleep } from '../common/interruptible-sleep';

export interface NodeAclSyncOptions {
  pool: pg.Pool;
  /** A client with admin rights (`ACL …`, `CONFIG GET aclfile`); not a blocking connection. */
  redis: Redis;
  /** Base of the node prefixes (`<prefix>:node:<id>`): the scheduler's `QUEUE_PREFIX`. */
  prefix: string;
  log: Logger;
  /** Pause between passes. A Redis restart or failover refuses nodes for at most about this long. */
  intervalMs: number;
}

const MAX_FAILURE_BACKOFF_MS = 30_000;

/**
 * The ACL sync loop (ADR-009): node Redis users are derived from `nodes.credentialHash` and re-applied every
 * `intervalMs`, since Redis neither replicates ACL users nor keeps them across a restart without an aclfile. Each
 * pass reads every node's id and hash and calls `syncNodeUsers` (creates missing users, repairs changed ones,
 * removes users of deleted nodes). Passes are idempotent, so every scheduler replica may run the loop.
 */
export class NodeAclSync {
  private loop: Promise<void> | undefined;
  private stopping = false;
  private unknown = new Set<string>();
  private readonly pause = new InterruptibleSleep();

  constructor(private readonly options: NodeAclSyncOptions) {}

  /** Starts the loop (idempotent); the first pass runs at once. */
  start(): void {
    this.stopping = false;
    this.loop ??= this.run();
  }

  /** Lets the pass under way finish, then ends the loop. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.pause.wake();
    await this.loop;
    this.loop = undefined;
  }

  /** One pass: PostgreSQL's nodes → Redis users. */
  async runOnce(): Promise<NodeUserSyncResult> {
    const { rows } = await this.options.pool.query<{ id: string; credentialHash: Buffer | null }>(
      'SELECT id, "credentialHash" FROM nodes',
    );
    // A user is deleted only when its node was already unknown in the previous pass (a join commits after it
    // creates its user, see `SyncOptions.mayRemove`).
    const previous = this.unknown;
    const result = await syncNodeUsers(this.options.redis, rows, this.options.prefix, {
      mayRemove: (nodeId) => previous.has(nodeId),
    });
    this.unknown = new Set(result.unknown.filter((nodeId) => !previous.has(nodeId)));
    return result;
  }

  private async run(): Promise<void> {
    const { log, intervalMs } = this.options;
    let failures = 0;
    while (!this.stopping) {
      try {
        const result = await this.runOnce();
        failures = 0;
        if (result.created + result.updated + result.removed > 0) {
          log.info(result, 'node ACL users repaired');
        }
      } catch (error) {
        failures += 1;
        log.error({ err: error, failures }, 'node ACL sync failed; retried');
      }
      const pause = failures === 0 ? intervalMs : Math.min(intervalMs * 2 ** failures, MAX_FAILURE_BACKOFF_MS);
      await this.sleep(pause);
    }
  }

  private sleep(ms: number): Promise<void> {
    return this.stopping ? Promise.resolve() : this.pause.sleep(ms);
  }
}
