import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { NodeConnection } from '@caas/node-client';
import type { NodeReport } from '@caas/queue-contracts';
import { DESIRED_SET_READY_JOB, NodeQueueName, STATUS_FIELD, nodeAclUser, nodeKeys } from '@caas/queue-contracts';
import { podEventChannel } from '@caas/log-stream-contract';
import { flushRedisPrefix, testRedisUrl, uniqueRedisPrefix } from '@caas/testing';
import { applyNodeUser, removeNodeUser, syncNodeUsers } from '../node-acl';

jest.setTimeout(30_000);

interface TestNode {
  id: string;
  password: string;
  hash: Buffer;
  redis: Redis;
}

const redisUrl = testRedisUrl();
const prefix = uniqueRedisPrefix('node-acl');
const base = prefix.slice(0, -1);
let admin: Redis;
let a: TestNode;
let b: TestNode;
const opened: Redis[] = [];
const createdUsers = new Set<string>();

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

/** A client logged in as `username`; connection errors go to the failing command instead of the console. */
async function connectAs(username: string, password: string): Promise<Redis> {
  // Logged in by an explicit AUTH: a failed AUTH would leave the connection as the previous (default) user.
  const redis = new Redis(redisUrl, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    enableReadyCheck: false,
    disableClientInfo: true,
    retryStrategy: () => null,
  });
  redis.on('error', () => undefined);
  opened.push(redis);
  await redis.connect();
  await redis.call('AUTH', username, password);
  return redis;
}

async function newNode(): Promise<TestNode> {
  const id = randomUUID();
  const password = randomBytes(32).toString('base64url');
  const hash = sha256(password);
  createdUsers.add(nodeAclUser(id));
  await applyNodeUser(admin, id, hash.toString('hex'), base);
  return { id, password, hash, redis: await connectAs(nodeAclUser(id), password) };
}

/** Asserts that Redis refuses the command for lack of permission (not for some other reason). */
async function expectRefused(promise: Promise<unknown>): Promise<void> {
  // Redis 7.0 words it differently inside scripts ("can't access") and for DEBUG ("not allowed").
  await expect(promise).rejects.toThrow(/NOPERM|no permissions|can't access|not allowed/i);
}

const heartbeat = (): NodeReport => ({
  kind: 'heartbeat',
  epoch: 1,
  appliedVersion: '0',
  sentAt: new Date().toISOString(),
  capacity: { vcpus: 4, memoryMiB: 4096, pods: 10, diskBytes: 0 },
  usage: { vcpus: 0, memoryMiB: 0, pods: 0, diskUsedBytes: 0, imageCacheBytes: 0 },
  diskPressure: false,
  accelerator: null,
  pods: [],
});

beforeAll(async () => {
  admin = new Redis(redisUrl, { maxRetriesPerRequest: 2 });
  a = await newNode();
  b = await newNode();
});

afterAll(async () => {
  await Promise.allSettled(opened.map((redis) => redis.quit()));
  for (const user of createdUsers) await admin.call('ACL', 'DELUSER', user).catch(() => undefined);
  await admin.call('ACL', 'DELUSER', 'caas-unrelated-test-user').catch(() => undefined);
  await flushRedisPrefix(redisUrl, prefix);
  await admin.quit();
});

describe("a node's own keys", () => {
  it("runs a BullMQ worker on the node's queue `desired` and reads the announcement", async () => {
    const keys = nodeKeys(a.id, base);
    const queue = new Queue(NodeQueueName.Desired, { connection: admin, prefix: keys.prefix });
    const connection = new NodeConnection({
      identity: {
        nodeId: a.id,
        name: 'node-a',
        epoch: 1,
        redis: { username: nodeAclUser(a.id), password: a.password },
        queuePrefix: keys.prefix,
      },
      redisUrl,
      onError: (error) => errors.push(error),
    });
    const errors: Error[] = [];
    try {
      const heard = new Promise((resolve) => connection.onAnnouncement(async (ready) => resolve(ready)));
      await queue.add(DESIRED_SET_READY_JOB, { version: '7', epoch: 1 }, { jobId: 'v7' });
      await expect(heard).resolves.toEqual({ version: '7', epoch: 1 });
      // The worker also completes the job (its own writes under the queue's keys are allowed).
      for (let i = 0; i < 100 && (await queue.getJobState('v7')) !== 'completed'; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(await queue.getJobState('v7')).toBe('completed');

      await connection.report(heartbeat());
      const entries = await admin.xrange(keys.status, '-', '+');
      expect(entries).toHaveLength(1);
      expect(JSON.parse(entries[0]?.[1][1] ?? 'null')).toMatchObject({ kind: 'heartbeat' });
      expect(entries[0]?.[1][0]).toBe(STATUS_FIELD);
      expect(await connection.readDesiredSet()).toBeNull();
    } finally {
      await connection.close();
      await queue.close();
    }
    expect(errors).toEqual([]);
  });

  it('may GET its desired set but not change it', async () => {
    const keys = nodeKeys(a.id, base);
    await admin.set(keys.desiredSet, '{"version":"1"}');
    expect(await a.redis.get(keys.desiredSet)).toBe('{"version":"1"}');
    await expectRefused(a.redis.set(keys.desiredSet, 'forged'));
    await expectRefused(a.redis.del(keys.desiredSet));
    await expectRefused(a.redis.append(keys.desiredSet, 'x'));
  });

  it('may XADD (MAXLEN ~) to its status stream but not read, trim or delete it; B may not write to it', async () => {
    const keys = nodeKeys(a.id, base);
    await admin.xgroup('CREATE', keys.status, 'ingest', '$', 'MKSTREAM');
    await a.redis.xadd(keys.status, 'MAXLEN', '~', 10_000, '*', STATUS_FIELD, '{}');
    await expectRefused(a.redis.xrange(keys.status, '-', '+'));
    await expectRefused(a.redis.xread('STREAMS', keys.status, '0'));
    await expectRefused(a.redis.xtrim(keys.status, 'MAXLEN', 0));
    await expectRefused(a.redis.del(keys.status));
    await expectRefused(a.redis.unlink(keys.status));
    await expectRefused(a.redis.xgroup('DESTROY', keys.status, 'ingest'));
    await expectRefused(a.redis.set(keys.status, 'x'));
    await expectRefused(b.redis.xadd(keys.status, '*', STATUS_FIELD, '{"forged":true}'));
  });
});

describe("another node's keys", () => {
  it("A can neither read nor write any of B's keys", async () => {
    const keysB = nodeKeys(b.id, base);
    await admin.set(keysB.desiredSet, '{"version":"2"}');
    await expectRefused(a.redis.get(keysB.desiredSet));
    await expectRefused(a.redis.set(keysB.desiredSet, 'forged'));
    await expectRefused(a.redis.del(keysB.desiredSet));
    await expectRefused(a.redis.xadd(keysB.status, '*', STATUS_FIELD, '{}'));
    await expectRefused(a.redis.xread('STREAMS', keysB.status, '0'));
    await expectRefused(a.redis.del(keysB.status));
    await expectRefused(a.redis.get(`${prefix}unrelated`));
  });

  it("A cannot touch B's queue", async () => {
    const keysB = nodeKeys(b.id, base);
    await expectRefused(a.redis.zadd(`${keysB.prefix}:${NodeQueueName.Desired}:marker`, 0, '0'));
    await expectRefused(a.redis.lpush(`${keysB.prefix}:${NodeQueueName.Desired}:wait`, '1'));
    await expectRefused(a.redis.hgetall(`${keysB.prefix}:${NodeQueueName.Desired}:meta`));
    await expectRefused(a.redis.bzpopmin(`${keysB.prefix}:${NodeQueueName.Desired}:marker`, 0.01));
  });

  it("A cannot EVAL a script that touches B's keys, whether declared or not", async () => {
    const keysB = nodeKeys(b.id, base);
    await expectRefused(a.redis.eval("return redis.call('GET', KEYS[1])", 1, keysB.desiredSet));
    const own = `${nodeKeys(a.id, base).prefix}:${NodeQueueName.Desired}:x`;
    await expectRefused(a.redis.eval("return redis.call('SET', ARGV[1], 'forged')", 1, own, keysB.desiredSet));
    await expectRefused(a.redis.eval("return redis.call('DEL', ARGV[1])", 1, own, nodeKeys(a.id, base).desiredSet));
    expect(await admin.get(keysB.desiredSet)).toBe('{"version":"2"}');
  });
});

describe('server-wide commands', () => {
  it.each([
    ['SCAN', ['0']],
    ['KEYS', ['*']],
    ['RANDOMKEY', []],
    ['DBSIZE', []],
    ['INFO', []],
    ['FLUSHALL', []],
    ['FLUSHDB', []],
    ['DEBUG', ['SLEEP', '0']],
    ['CONFIG', ['GET', '*']],
    ['ACL', ['LIST']],
    ['ACL', ['WHOAMI']],
    ['CLIENT', ['LIST']],
    ['CLIENT', ['KILL', 'TYPE', 'normal']],
    ['SCRIPT', ['FLUSH']],
    ['SCRIPT', ['DEBUG', 'SYNC']],
    ['FUNCTION', ['LIST']],
    ['MONITOR', []],
    ['SHUTDOWN', ['NOSAVE']],
    ['PUBLISH', ['caas:pod-events:x', 'forged']],
  ])('refuses %s %j', async (command, args) => {
    await expectRefused(a.redis.call(command, ...args));
  });

  it('refuses PUBLISH and SUBSCRIBE on pod event channels', async () => {
    const channel = podEventChannel(randomUUID());
    await expectRefused(a.redis.publish(channel, '{"forged":true}'));
    const subscriber = await connectAs(nodeAclUser(a.id), a.password);
    await expectRefused(subscriber.subscribe(channel));
    await expectRefused(subscriber.psubscribe('*'));
  });

  it('refuses a wrong password', async () => {
    await expect(connectAs(nodeAclUser(a.id), 'not-the-password')).rejects.toThrow(/WRONGPASS/);
    await expect(connectAs(nodeAclUser(b.id), a.password)).rejects.toThrow(/WRONGPASS/);
  });
});

describe('removeNodeUser and syncNodeUsers', () => {
  it('removes one user and closes its connections', async () => {
    const node = await newNode();
    expect(await node.redis.xadd(nodeKeys(node.id, base).status, '*', STATUS_FIELD, '{}')).toEqual(expect.any(String));
    expect(await removeNodeUser(admin, node.id)).toBe(true);
    await expect(node.redis.xadd(nodeKeys(node.id, base).status, '*', STATUS_FIELD, '{}')).rejects.toThrow();
    expect(await removeNodeUser(admin, node.id)).toBe(false);
    await expect(connectAs(nodeAclUser(node.id), node.password)).rejects.toThrow(/WRONGPASS/);
  });

  it('recreates a deleted user, repairs a changed one, removes a stale one, leaves other users alone', async () => {
    const c = await newNode();
    const stale = await newNode();
    const unrelatedPassword = randomBytes(16).toString('hex');
    await admin.call('ACL', 'SETUSER', 'caas-unrelated-test-user', 'reset', 'on', `>${unrelatedPassword}`, '+ping');
    const unrelatedBefore = await admin.call('ACL', 'GETUSER', 'caas-unrelated-test-user');

    await admin.call('ACL', 'DELUSER', nodeAclUser(a.id)); // lost (a Redis restart)
    await admin.call('ACL', 'SETUSER', nodeAclUser(c.id), '+@all', '~*'); // tampered with
    // A node user of another base (another deployment or test run sharing this Redis) is not ours to remove.
    const foreign = randomUUID();
    createdUsers.add(nodeAclUser(foreign));
    await applyNodeUser(admin, foreign, sha256('x').toString('hex'), `${base}-other`);
    const nodes = [a, b, c].map((n) => ({ id: n.id, credentialHash: n.hash }));

    const result = await syncNodeUsers(admin, nodes, base);
    expect(result).toMatchObject({ created: 1, updated: 1, removed: 1 });
    createdUsers.delete(nodeAclUser(stale.id));

    const users = (await admin.call('ACL', 'USERS')) as string[];
    expect(users).toEqual(expect.arrayContaining([nodeAclUser(a.id), nodeAclUser(b.id), nodeAclUser(c.id)]));
    expect(users).not.toContain(nodeAclUser(stale.id));
    expect(users).toContain('default');
    expect(users).toContain(nodeAclUser(foreign));
    expect(await admin.call('ACL', 'GETUSER', 'caas-unrelated-test-user')).toEqual(unrelatedBefore);

    // The repaired users work again, with their old passwords and no more than their rules.
    const again = await connectAs(nodeAclUser(a.id), a.password);
    expect(await again.get(nodeKeys(a.id, base).desiredSet)).toBe('{"version":"1"}');
    const repaired = await connectAs(nodeAclUser(c.id), c.password);
    await expectRefused(repaired.get(nodeKeys(a.id, base).desiredSet));

    // A second pass finds nothing to do.
    expect(await syncNodeUsers(admin, nodes, base)).toEqual({ created: 0, updated: 0, removed: 0, unknown: [] });
  });

  it('drops the user of a node whose credential hash is gone', async () => {
    const d = await newNode();
    const nodes = [a, b, d].map((n) => ({ id: n.id, credentialHash: n === d ? null : n.hash }));
    const result = await syncNodeUsers(admin, nodes, base);
    // d's user, and that of the previous test's node c, which the list no longer names.
    expect(result).toMatchObject({ created: 0, updated: 0, removed: 2 });
    expect(result.unknown).toHaveLength(2);
    expect((await admin.call('ACL', 'USERS')) as string[]).not.toContain(nodeAclUser(d.id));
  });

  it('keeps the user of an unknown node while mayRemove says no (a join not yet committed)', async () => {
    const joining = await newNode();
    const nodes = [a, b].map((n) => ({ id: n.id, credentialHash: n.hash }));
    const kept = await syncNodeUsers(admin, nodes, base, { mayRemove: () => false });
    expect(kept).toMatchObject({ removed: 0, unknown: [joining.id] });
    expect((await admin.call('ACL', 'USERS')) as string[]).toContain(nodeAclUser(joining.id));
    const removed = await syncNodeUsers(admin, nodes, base, { mayRemove: (id) => id === joining.id });
    expect(removed).toMatchObject({ removed: 1, unknown: [joining.id] });
  });
});
