import Redis from 'ioredis';
import { flushRedisPrefix, testRedisUrl, uniqueRedisPrefix } from '../redis';

describe('uniqueRedisPrefix', () => {
  it('is test:<label>:<random>: and never the same twice', () => {
    const a = uniqueRedisPrefix('placement');
    expect(a).toMatch(/^test:placement:[0-9a-f]{12}:$/);
    expect(uniqueRedisPrefix('placement')).not.toBe(a);
  });

  it('keeps glob characters and separators out of the label', () => {
    expect(uniqueRedisPrefix('a*b?[c]:d e')).toMatch(/^test:a-b-c-d-e:[0-9a-f]{12}:$/);
    expect(uniqueRedisPrefix('***')).toMatch(/^test:anon:[0-9a-f]{12}:$/);
  });
});

describe('flushRedisPrefix', () => {
  const redis = new Redis(testRedisUrl());
  const mine = uniqueRedisPrefix('flush-mine');
  const theirs = uniqueRedisPrefix('flush-theirs');
  // A prefix with glob characters must be matched literally: `lit?x*` must not match `lit1xyz`.
  const literal = `${uniqueRedisPrefix('flush-literal')}lit?x*`;
  const lookalike = literal.replace('lit?x*', 'lit1xyz');

  afterAll(async () => {
    await flushRedisPrefix(testRedisUrl(), theirs);
    await redis.del(lookalike);
    await redis.quit();
  });

  it('deletes only the keys under the prefix, however many there are', async () => {
    const keys = Array.from({ length: 2500 }, (_, i) => `${mine}job:${i}`);
    for (let i = 0; i < keys.length; i += 500) {
      await redis.mset(...keys.slice(i, i + 500).flatMap((k) => [k, '1']));
    }
    await redis.hset(`${mine}hash`, 'f', 'v');
    await redis.set(`${theirs}job:1`, 'keep');

    expect(await flushRedisPrefix(testRedisUrl(), mine)).toBe(2501);
    expect(await redis.exists(keys[0], keys[2499], `${mine}hash`)).toBe(0);
    expect(await redis.get(`${theirs}job:1`)).toBe('keep');
    expect(await flushRedisPrefix(testRedisUrl(), mine)).toBe(0);
  });

  it('matches the prefix literally, glob characters included', async () => {
    await redis.set(`${literal}k`, '1');
    await redis.set(lookalike, 'keep');
    expect(await flushRedisPrefix(testRedisUrl(), literal)).toBe(1);
    expect(await redis.get(lookalike)).toBe('keep');
  });

  it('refuses an empty prefix', async () => {
    await expect(flushRedisPrefix(testRedisUrl(), '')).rejects.toThrow(/empty prefix/);
  });
});
