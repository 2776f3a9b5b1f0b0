import type { Logger } from 'pino';

/** The one command the check needs (ioredis `Redis#call`). */
export interface RedisCommander {
  call(command: string, ...args: string[]): Promise<unknown>;
}

export type EvictionPolicyCheck = 'fatal' | 'warn';

export class EvictionPolicyError extends Error {
  override readonly name = 'EvictionPolicyError';
}

/**
 * Redis's `maxmemory-policy`: `CONFIG GET` where allowed, else `INFO memory` (managed Redis and ACL users
 * often deny CONFIG), else `undefined`.
 */
export async function readEvictionPolicy(redis: RedisCommander): Promise<string | undefined> {
  try {
    const reply = await redis.call('CONFIG', 'GET', 'maxmemory-policy');
    if (Array.isArray(reply) && typeof reply[1] === 'string') return reply[1];
  } catch {
    // fall through to INFO
  }
  try {
    const info = await redis.call('INFO', 'memory');
    const match = typeof info === 'string' ? /^maxmemory_policy:(\S+)/m.exec(info) : null;
    return match?.[1];
  } catch {
    return undefined;
  }
}

/**
 * BullMQ keeps every job in Redis keys; a Redis that evicts keys under memory pressure silently loses jobs
 * (and their locks). With `fatal`, anything but `noeviction` (or a policy that cannot be read) refuses to
 * start; with `warn`, it is logged at error level and the process runs.
 */
export async function checkEvictionPolicy(
  redis: RedisCommander,
  mode: EvictionPolicyCheck,
  log: Logger,
): Promise<string | undefined> {
  const policy = await readEvictionPolicy(redis);
  if (policy === 'noeviction') return policy;
  const problem =
    `Redis maxmemory-policy is ${policy ?? 'unreadable (CONFIG GET and INFO denied)'}, not noeviction: ` +
    'BullMQ jobs can be evicted and lost';
  if (mode === 'fatal') {
    throw new EvictionPolicyError(
      `${problem}. Set "maxmemory-policy noeviction" on the Redis server, or REDIS_EVICTION_POLICY_CHECK=warn to run anyway.`,
    );
  }
  log.error({ maxmemoryPolicy: policy ?? null }, `${problem} (REDIS_EVICTION_POLICY_CHECK=warn: running anyway)`);
  return policy;
}
