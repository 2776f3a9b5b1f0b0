import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import type { Prisma } from '@caas/db';
import type { PodLogEntry } from '@caas/log-stream-contract';
import { xaddArguments } from '@caas/log-stream-contract';
import { DEFAULT_QUEUE_PREFIX, nodeLogStreamKey } from '@caas/queue-contracts';
import { testRedisUrl } from '@caas/testing';
import type { TestApi } from './test-api';
import { uniqueSlug } from './test-api';

/** Rows and Redis entries the node, log and subscription tests start from, written directly. */

/** The node each pod of this test file was last placed on by `insertPod` / `placePod`. */
const placements = new Map<string, string>();
/** Log stream keys this test file wrote (`logStreamKey`), removed by `deleteLogStreams`. */
const writtenKeys = new Set<string>();
/** The node `appendLog` writes as for a pod these fixtures did not place: one the pod never ran on. */
const strangerNode = randomUUID();
/** Per API under test, the node `insertPod` places pods on unless told otherwise. */
const defaultNodes = new WeakMap<TestApi, Promise<string>>();

/**
 * Deletes the log streams this test file wrote, so a run leaves nothing in the shared Redis (the agent gives
 * real streams a TTL; tests write theirs without one).
 */
export async function deleteLogStreams(_api: TestApi, redis: Redis): Promise<void> {
  const keys = [...writtenKeys];
  writtenKeys.clear();
  if (keys.length > 0) await redis.del(...keys);
}

/**
 * The log stream a node agent writes the pod's output to (`<base>:node:<nodeId>:logs:<podId>`, the tests' API
 * uses the default base), by default the node the pod was placed on here; remembered for `deleteLogStreams`.
 */
export function logStreamKey(podId: string, nodeId: string = placements.get(podId) ?? strangerNode): string {
  const key = nodeLogStreamKey(nodeId, podId, DEFAULT_QUEUE_PREFIX);
  writtenKeys.add(key);
  return key;
}

/**
 * A pod row of the tenant (what createPod would have written; no containers needed to have logs), placed on
 * `nodeId` (by default a node of the API's database made once), or on no node with `nodeId: null`.
 */
export async function insertPod(
  api: TestApi,
  tenantId: string,
  options: { nodeId?: string | null } = {},
): Promise<string> {
  const nodeId = options.nodeId === undefined ? await defaultNode(api) : options.nodeId;
  const pod = await api.prisma.pod.create({
    data: { tenantId, name: uniqueSlug('pod'), vcpus: 1, memoryMiB: 128, nodeId },
    select: { id: true },
  });
  if (nodeId !== null) {
    await scheduledEvent(api, tenantId, pod.id, nodeId);
    placements.set(pod.id, nodeId);
  }
  return pod.id;
}

/** Places the pod on another node as the scheduler does: the pod's `nodeId` and a `Scheduled` event. */
export async function placePod(api: TestApi, podId: string, nodeId: string | null): Promise<void> {
  const pod = await api.prisma.pod.update({ where: { id: podId }, data: { nodeId }, select: { tenantId: true } });
  if (nodeId === null) return;
  await scheduledEvent(api, pod.tenantId, podId, nodeId);
  placements.set(podId, nodeId);
}

async function scheduledEvent(api: TestApi, tenantId: string, podId: string, nodeId: string): Promise<void> {
  await api.prisma.event.create({
    data: { tenantId, podId, nodeId, reason: 'Scheduled', message: `Successfully assigned pod to node ${nodeId}` },
  });
}

function defaultNode(api: TestApi): Promise<string> {
  let node = defaultNodes.get(api);
  if (node === undefined) {
    node = insertNode(api).then((created) => created.id);
    defaultNodes.set(api, node);
  }
  return node;
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

/**
 * Appends a log line as the agent of `nodeId` does (XADD … MAXLEN ~ … to its own stream of the pod); returns the
 * entry's stream id. By default as the node `insertPod`/`placePod` placed the pod on, else as a node the pod never
 * ran on (whose lines the API must not show).
 */
export async function appendLog(
  redis: Redis,
  podId: string,
  entry: Partial<PodLogEntry> & Pick<PodLogEntry, 'line'>,
  nodeId?: string,
): Promise<string> {
  const [, ...args] = xaddArguments(podId, { container: 'main', stream: 'stdout', timeMs: Date.now(), ...entry });
  return (await redis.call('XADD', logStreamKey(podId, nodeId), ...args)) as string;
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
