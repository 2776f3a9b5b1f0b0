import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379/0';

/** The Redis the integration tests use: `TEST_REDIS_URL`, or the local one. */
export function testRedisUrl(): string {
  return process.env['TEST_REDIS_URL'] || DEFAULT_REDIS_URL;
}

/**
 * A key prefix no other test (or run) uses: `test:<label>:<random>:`. Give it to BullMQ as its `prefix`,
 * or put it in front of every key, then remove the keys with `flushRedisPrefix`.
 */
export function uniqueRedisPrefix(label: string): string {
  const clean = label.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^-+|-+$/g, '') || 'anon';
  return `test:${clean}:${randomBytes(6).toString('hex')}:`;
}

/** Escapes Redis glob characters, so that a prefix is matched literally by `SCAN … MATCH`. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/**
 * Deletes every key that starts with `prefix` (SCAN + UNLINK, in batches) and returns how many were
 * deleted. Never FLUSHDB: other tests and other developers share the server.
 */
export async function flushRedisPrefix(redisUrl: string, prefix: string): Promise<number> {
  if (!prefix) throw new Error('flushRedisPrefix: refusing an empty prefix (it would match every key)');
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: false });
  redis.on('error', () => undefined); // surfaced through the failing command instead
  await redis.connect();
  try {
    const match = `${escapeGlob(prefix)}*`;
    let deleted = 0;
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 1000);
      cursor = next;
      // SCAN may return a key twice; UNLINK counts only what it removed.
      if (keys.length > 0) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
    return deleted;
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}
