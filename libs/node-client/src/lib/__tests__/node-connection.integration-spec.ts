// NodeConnection against the real Redis, as the node's own ACL user (the contract's `nodeAclRules`).
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { PodLogEntry } from '@caas/log-stream-contract';
import { POD_LOG_STREAM_TTL_SECONDS, decodeLogEntry } from '@caas/log-stream-contract';
import type { DesiredSetReady, Heartbeat } from '@caas/queue-contracts';
import {
  DESIRED_SET_READY_JOB,
  NodeQueueName,
  STATUS_FIELD,
  nodeAclRules,
  nodeAclUser,
  nodeKeys,
  nodeLogStreamKey,
} from '@caas/queue-contracts';
import { flushRedisPrefix, testRedisUrl, uniqueRedisPrefix } from '@caas/testing';
import type { NodeIdentity } from '../node-connection';
import { NodeConnection } from '../node-connection';

const prefix = uniqueRedisPrefix('node-client');
const nodeId = randomUUID();
const password = randomBytes(32).toString('base64url');
const keys = nodeKeys(nodeId, prefix);
const identity: NodeIdentity = {
  nodeId,
  name: 'n1',
  epoch: 1,
  redis: { username: nodeAclUser(nodeId), password },
  queuePrefix: keys.prefix,
};
let admin: Redis;
const connections: NodeConnection[] = [];

const connect = (who: NodeIdentity = identity): NodeConnection => {
  const connection = new NodeConnection({ identity: who, redisUrl: testRedisUrl() });
  connections.push(connection);
  return connection;
};

const set = (overrides: Record<string, unknown> = {}) =>
  JSON.stringify({
    nodeId,
    version: '4',
    epoch: 1,
    cordoned: false,
    draining: false,
    pods: [],
    registryCredentials: [],
    generatedAt: new Date().toISOString(),
    ...overrides,
  });

beforeAll(async () => {
  admin = new Redis(testRedisUrl());
  const hash = createHash('sha256').update(password).digest('hex');
  await admin.call('ACL', 'SETUSER', nodeAclUser(nodeId), ...nodeAclRules(nodeId, hash, prefix));
});

afterAll(async () => {
  await Promise.all(connections.map((c) => c.close()));
  await admin.call('ACL', 'DELUSER', nodeAclUser(nodeId));
  await flushRedisPrefix(testRedisUrl(), prefix);
  await admin.quit();
});

describe('NodeConnection (as the node’s own Redis user)', () => {
  it('reads its desired set: none yet, then the published one; refuses a set naming another node or garbage', async () => {
    const connection = connect();
    expect(await connection.readDesiredSet()).toBeNull();
    await admin.set(keys.desiredSet, set());
    expect(await connection.readDesiredSet()).toMatchObject({ nodeId, version: '4', epoch: 1, pods: [] });
    await admin.set(keys.desiredSet, set({ nodeId: randomUUID() }));
    await expect(connection.readDesiredSet()).rejects.toThrow(/names node/);
    await admin.set(keys.desiredSet, '{"version":');
    await expect(connection.readDesiredSet()).rejects.toThrow(/invalid/);
  });

  it('appends reports to its status stream as one JSON field per entry', async () => {
    const heartbeat: Heartbeat = {
      kind: 'heartbeat',
      epoch: 1,
      appliedVersion: '4',
      sentAt: new Date().toISOString(),
      capacity: { vcpus: 4, memoryMiB: 4096, pods: 10, diskBytes: 0 },
      usage: { vcpus: 0, memoryMiB: 0, pods: 0, diskUsedBytes: 0, imageCacheBytes: 0 },
      diskPressure: false,
      accelerator: 'TCG',
      pods: [],
    };
    await connect().report(heartbeat);
    const entries = await admin.xrange(keys.status, '-', '+');
    expect(entries).toHaveLength(1);
    const [, fields] = entries[0] ?? ['', []];
    expect(fields[0]).toBe(STATUS_FIELD);
    expect(JSON.parse(fields[1] ?? 'null')).toEqual(heartbeat);
  });

  it('hears "version N is ready" on its own queue', async () => {
    const heard: DesiredSetReady[] = [];
    connect().onAnnouncement(async (ready) => {
      heard.push(ready);
    });
    const queue = new Queue(NodeQueueName.Desired, { connection: admin, prefix: keys.prefix });
    await queue.add(DESIRED_SET_READY_JOB, { version: '5', epoch: 1 }, { jobId: 'v5' });
    await queue.add(DESIRED_SET_READY_JOB, { version: 'not a version', epoch: 1 }, { jobId: 'bad' });
    for (let i = 0; i < 200 && heard.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    await queue.close();
    expect(heard).toEqual([{ version: '5', epoch: 1 }]);
  });

  it('appends a pod’s output to its own log stream (ADR-005 entries) with a TTL', async () => {
    const podId = randomUUID();
    const key = nodeLogStreamKey(nodeId, podId, prefix);
    const entries: PodLogEntry[] = [
      { container: 'web', stream: 'stdout', line: 'hello', timeMs: 1_700_000_000_000 },
      { container: 'web', stream: 'stderr', line: 'oops ✓', timeMs: 1_700_000_000_001 },
    ];
    const connection = connect();
    await connection.appendLogs(podId, entries);
    await connection.appendLogs(podId, [{ container: 'side', stream: 'stdout', line: '', timeMs: 1_700_000_000_002 }]);
    await connection.appendLogs(podId, []);
    const read = (await admin.xrange(key, '-', '+')).map(([id, fields]) => decodeLogEntry(id, fields));
    expect(read.map((r) => r && { container: r.container, stream: r.stream, line: r.line, timeMs: r.timeMs })).toEqual([
      ...entries,
      { container: 'side', stream: 'stdout', line: '', timeMs: 1_700_000_000_002 },
    ]);
    const ttl = await admin.ttl(key);
    expect(ttl).toBeGreaterThan(POD_LOG_STREAM_TTL_SECONDS - 60);
    expect(ttl).toBeLessThanOrEqual(POD_LOG_STREAM_TTL_SECONDS);
  });

  it('cannot write another node’s log streams nor read its own', async () => {
    const raw = new Redis(testRedisUrl(), {
      username: nodeAclUser(nodeId),
      password,
      enableReadyCheck: false,
      disableClientInfo: true,
      maxRetriesPerRequest: 1,
    });
    try {
      const podId = randomUUID();
      const own = nodeLogStreamKey(nodeId, podId, prefix);
      await raw.xadd(own, '*', 'c', 'web', 's', 'o', 'l', 'x', 't', '1');
      await expect(raw.xadd(nodeLogStreamKey(randomUUID(), podId, prefix), '*', 'c', 'web')).rejects.toThrow(/NOPERM/);
      await expect(raw.xrange(own, '-', '+')).rejects.toThrow(/NOPERM/);
      await expect(raw.xadd(`${prefix}:logs:pod:${podId}`, '*', 'c', 'web')).rejects.toThrow(/NOPERM/);
    } finally {
      await raw.quit();
    }
  });

  it('cannot connect with a wrong password', async () => {
    const wrong = connect({ ...identity, redis: { ...identity.redis, password: 'nope' } });
    await expect(wrong.readDesiredSet()).rejects.toThrow(/WRONGPASS|invalid username-password|NOAUTH/);
  });
});
