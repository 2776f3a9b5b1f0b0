import pino from 'pino';
import type { RedisCommander } from '../redis-eviction-policy';
import { EvictionPolicyError, checkEvictionPolicy, readEvictionPolicy } from '../redis-eviction-policy';

const redisWith = (config: unknown, info: unknown): RedisCommander => ({
  call: (command: string) => {
    const reply = command === 'CONFIG' ? config : info;
    return reply instanceof Error ? Promise.reject(reply) : Promise.resolve(reply);
  },
});

const denied = new Error("NOPERM this user has no permissions to run the 'config|get' command");
const log = pino({ level: 'silent' });

describe('Redis eviction policy check', () => {
  it('reads the policy with CONFIG GET, or from INFO memory when CONFIG is denied', async () => {
    expect(await readEvictionPolicy(redisWith(['maxmemory-policy', 'noeviction'], ''))).toBe('noeviction');
    expect(
      await readEvictionPolicy(redisWith(denied, '# Memory\r\nmaxmemory:0\r\nmaxmemory_policy:allkeys-lru\r\n')),
    ).toBe('allkeys-lru');
    expect(await readEvictionPolicy(redisWith(denied, denied))).toBeUndefined();
  });

  it('passes with noeviction', async () => {
    await expect(checkEvictionPolicy(redisWith(['maxmemory-policy', 'noeviction'], ''), 'fatal', log)).resolves.toBe(
      'noeviction',
    );
  });

  it('refuses to start on any other (or an unreadable) policy when fatal, naming the fix', async () => {
    await expect(checkEvictionPolicy(redisWith(['maxmemory-policy', 'allkeys-lru'], ''), 'fatal', log)).rejects.toThrow(
      EvictionPolicyError,
    );
    await expect(
      checkEvictionPolicy(redisWith(['maxmemory-policy', 'volatile-ttl'], ''), 'fatal', log),
    ).rejects.toThrow(/maxmemory-policy is volatile-ttl[\s\S]*noeviction[\s\S]*REDIS_EVICTION_POLICY_CHECK=warn/);
    await expect(checkEvictionPolicy(redisWith(denied, denied), 'fatal', log)).rejects.toThrow(/unreadable/);
  });

  it('logs at error level and carries on when told to warn', async () => {
    const lines: string[] = [];
    const capture = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    await expect(
      checkEvictionPolicy(redisWith(['maxmemory-policy', 'allkeys-lru'], ''), 'warn', capture),
    ).resolves.toBe('allkeys-lru');
    expect(lines.map((line) => JSON.parse(line) as { level: number; maxmemoryPolicy: string })).toEqual([
      expect.objectContaining({ level: 50, maxmemoryPolicy: 'allkeys-lru' }),
    ]);
  });
});
