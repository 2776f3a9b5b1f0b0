import type { Redis } from 'ioredis';

export interface RateLimitOptions {
  /** Requests allowed per window and key. */
  limit: number;
  windowMs: number;
  /** Key prefix, so tests and deployments sharing a Redis never collide. */
  prefix: string;
}

export interface RateLimitDecision {
  allowed: boolean;
  /** Milliseconds until the current window ends. */
  retryAfterMs: number;
}

// INCR and the expiry in one atomic step: a key can never be left without a TTL.
const SCRIPT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
return {n, ttl}
`;

/**
 * Fixed-window request counter per key in Redis, shared by every API replica. One round trip per
 * request (EVALSHA of a cached script).
 */
export class RateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly options: RateLimitOptions,
  ) {
    redis.defineCommand('caasRateLimit', { numberOfKeys: 1, lua: SCRIPT });
  }

  async hit(key: string): Promise<RateLimitDecision> {
    const run = (this.redis as unknown as Record<string, (k: string, w: number) => Promise<[number, number]>>)[
      'caasRateLimit'
    ];
    const [count, ttl] = await run.call(this.redis, `${this.options.prefix}${key}`, this.options.windowMs);
    return { allowed: count <= this.options.limit, retryAfterMs: Math.max(ttl, 0) };
  }
}
