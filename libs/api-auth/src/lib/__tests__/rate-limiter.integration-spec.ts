import { Redis } from 'ioredis';
import { flushRedisPrefix, testRedisUrl, uniqueRedisPrefix } from '@caas/testing';
import { RateLimiter } from '../rate-limiter';

describe('RateLimiter (real Redis)', () => {
  const prefix = uniqueRedisPrefix('rate-limiter');
  let redis: Redis;

  beforeAll(() => {
    redis = new Redis(testRedisUrl());
  });
  afterAll(async () => {
    await flushRedisPrefix(testRedisUrl(), prefix);
    await redis.quit();
  });

  it('allows the limit per window and key, then refuses with the time left', async () => {
    const limiter = new RateLimiter(redis, { limit: 3, windowMs: 60_000, prefix });
    const decisions = [];
    for (let i = 0; i < 4; i++) decisions.push(await limiter.hit('token-a'));
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false]);
    expect(decisions[3].retryAfterMs).toBeGreaterThan(55_000);
    expect(decisions[3].retryAfterMs).toBeLessThanOrEqual(60_000);
    await expect(limiter.hit('token-b')).resolves.toMatchObject({ allowed: true });
  });

  it('opens a new window once the old one expires, and never leaves a key without a TTL', async () => {
    const limiter = new RateLimiter(redis, { limit: 1, windowMs: 200, prefix });
    expect((await limiter.hit('token-c')).allowed).toBe(true);
    expect((await limiter.hit('token-c')).allowed).toBe(false);
    expect(await redis.pttl(`${prefix}token-c`)).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 300));
    expect((await limiter.hit('token-c')).allowed).toBe(true);
  });

  it('counts across limiter instances sharing Redis, as API replicas do', async () => {
    const a = new RateLimiter(redis, { limit: 2, windowMs: 60_000, prefix });
    const other = new Redis(testRedisUrl());
    try {
      const b = new RateLimiter(other, { limit: 2, windowMs: 60_000, prefix });
      expect((await a.hit('token-d')).allowed).toBe(true);
      expect((await b.hit('token-d')).allowed).toBe(true);
      expect((await a.hit('token-d')).allowed).toBe(false);
    } finally {
      await other.quit();
    }
  });
});
