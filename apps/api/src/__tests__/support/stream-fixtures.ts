import Redis from 'ioredis';
import type { Prisma } from '@caas/db';
import type { PodLogEntry } from '@caas/log-stream-contract';
import { podLogStreamKey, xaddArguments } from '@caas/log-stream-contract';
import { testRedisUrl } from '@caas/testing';
import type { TestApi } from './test-api';
import { uniqueSlug } from './test-api';

/** Rows and Redis entries the node, log and subscription tests start from, written directly. */

/**
 * Deletes the log streams of every pod in the test's database, so a run leaves nothing in the shared Redis
 * (the agent gives real streams a TTL; tests write theirs without one).
 */
export async function deleteLogStreams(api: TestApi, redis: Redis): Promise<void> {
  const pods = await api.prisma.pod.findMany({ select: { id: true } });
  if (pods.length > 0) await redis.del(...pods.map((pod) => podLogStreamKey(pod.id)));
}

/** A pod row of the tenant (what createPod would have written; no containers needed to have logs). */
export async function insertPod(api: TestApi, tenantId: string): Promise<string> {
  const pod = await api.prisma.pod.create({
    data: { tenantId, name: uniqueSlug('pod'), vcpus: 1, memoryMiB: 128 },
    select: { id: true },
  });
  return pod.id;
}

/** A node as an agent's join would register it. */
export async function insertNode(api: TestApi, data: Partial<Prisma.NodeCreateInput> = {}) {
  return api.prisma.node.create({
    data: { name: uniqueSlug('node'), capacityVcpus: 32, capacityMemoryMiB: 65_536, capacityPods: 50, ...data },
  });
}

/** A Redis client of the test's own (as a node agent would have). */
export function testRedis(): Redis {
  const redis = new Redis(testRedisUrl(), { maxRetriesPerRequest: 2 });
  redis.on('error', () => undefined);
  return redis;
}

/** Appends a log line as the agent does (XADD … MAXLEN ~ …); returns the entry's stream id. */
export async function appendLog(
  redis: Redis,
  podId: string,
  entry: Partial<PodLogEntry> & Pick<PodLogEntry, 'line'>,
): Promise<string> {
  const args = xaddArguments(podId, { container: 'main', stream: 'stdout', timeMs: Date.now(), ...entry });
  return (await redis.call('XADD', ...args)) as string;
}

/** Subscribers this Redis has on the pod's event channel (any process). */
export async function eventChannelSubscribers(redis: Redis, podId: string): Promise<number> {
  const reply = (await redis.call('PUBSUB', 'NUMSUB', `caas:pod-events:${podId}`)) as [string, number];
  return Number(reply[1]);
}

/** Redis connections some API process holds open to follow the pod's log stream. */
export async function logFollowerConnections(redis: Redis, podId: string): Promise<number> {
  const list = (await redis.call('CLIENT', 'LIST')) as string;
  return list.split('\n').filter((line) => line.includes(` name=caas:api:pod-logs:${podId} `)).length;
}
