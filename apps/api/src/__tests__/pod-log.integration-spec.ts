import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { POD_LOG_LINE_MAX_BYTES } from '@caas/log-stream-contract';
import {
  appendLog,
  deleteLogStreams,
  insertNode,
  insertPod,
  logStreamKey,
  placePod,
  testRedis,
} from './support/stream-fixtures';
import type { CreatedTenant, GqlResponse, TestApi } from './support/test-api';
import { dataOf, expectError, firstError, startTestApi } from './support/test-api';

let api: TestApi;
let redis: Redis;
let tenantA: CreatedTenant;
let tenantB: CreatedTenant;
let viewerA: string;

beforeAll(async () => {
  api = await startTestApi();
  redis = testRedis();
  tenantA = await api.createTenant();
  tenantB = await api.createTenant();
  viewerA = await api.tokenWithRole(tenantA.ownerToken, 'VIEWER');
});

afterAll(async () => {
  if (redis && api) await deleteLogStreams(api, redis);
  redis?.disconnect();
  await api?.close();
});

const POD_LOGS = `query ($podId: ID!, $container: String, $tail: Int, $since: DateTime) {
  podLogs(podId: $podId, container: $container, tail: $tail, since: $since) { seq timestamp container stream line }
}`;

const readLogs = (variables: Record<string, unknown>, token = viewerA) => api.gql(POD_LOGS, variables, token);
const linesOf = (response: GqlResponse): string[] =>
  dataOf(response).podLogs.map((entry: { line: string }) => entry.line);

/** A pod of tenant A, placed on a node (its streams are removed afterwards). */
async function podOfA(): Promise<string> {
  return insertPod(api, tenantA.tenantId);
}

const newNode = async () => (await insertNode(api)).id;

afterEach(async () => {
  // Streams this file wrote only (their pod ids are random): the server is shared.
  await deleteLogStreams(api, redis);
});

describe('podLogs', () => {
  it("returns the pod's lines, oldest first, with their container, stream, capture time and position", async () => {
    const podId = await podOfA();
    const t0 = Date.now() - 10_000;
    const seqs = [
      await appendLog(redis, podId, { container: 'web', stream: 'stdout', line: 'listening on :8080', timeMs: t0 }),
      await appendLog(redis, podId, { container: 'web', stream: 'stderr', line: 'warning: no TLS', timeMs: t0 + 1 }),
      await appendLog(redis, podId, { container: 'sidecar', stream: 'stdout', line: 'ready', timeMs: t0 + 2 }),
    ];
    expect(dataOf(await readLogs({ podId })).podLogs).toEqual([
      {
        seq: seqs[0],
        timestamp: new Date(t0).toISOString(),
        container: 'web',
        stream: 'STDOUT',
        line: 'listening on :8080',
      },
      {
        seq: seqs[1],
        timestamp: new Date(t0 + 1).toISOString(),
        container: 'web',
        stream: 'STDERR',
        line: 'warning: no TLS',
      },
      {
        seq: seqs[2],
        timestamp: new Date(t0 + 2).toISOString(),
        container: 'sidecar',
        stream: 'STDOUT',
        line: 'ready',
      },
    ]);
  });

  it('returns the last `tail` lines (100 by default)', async () => {
    const podId = await podOfA();
    const pipeline = redis.pipeline();
    for (let i = 0; i < 150; i++) {
      pipeline.xadd(logStreamKey(podId), '*', 'c', 'web', 's', 'o', 'l', `line ${i}`, 't', String(Date.now()));
    }
    await pipeline.exec();
    const all = linesOf(await readLogs({ podId }));
    expect(all).toHaveLength(100);
    expect(all[0]).toBe('line 50');
    expect(all[99]).toBe('line 149');
    expect(linesOf(await readLogs({ podId, tail: 3 }))).toEqual(['line 147', 'line 148', 'line 149']);
    expect(linesOf(await readLogs({ podId, tail: 1 }))).toEqual(['line 149']);
  });

  it("filters by container, looking back past other containers' lines", async () => {
    const podId = await podOfA();
    await appendLog(redis, podId, { container: 'web', line: 'web 1' });
    await appendLog(redis, podId, { container: 'web', stream: 'stderr', line: 'web 2' });
    // Enough of another container's output that the wanted lines are several pages back.
    const pipeline = redis.pipeline();
    for (let i = 0; i < 2500; i++) {
      pipeline.xadd(logStreamKey(podId), '*', 'c', 'sidecar', 's', 'o', 'l', `noise ${i}`, 't', String(Date.now()));
    }
    await pipeline.exec();
    await appendLog(redis, podId, { container: 'web', line: 'web 3' });

    const web = dataOf(await readLogs({ podId, container: 'web', tail: 10 })).podLogs;
    expect(web.map((l: { line: string; stream: string }) => [l.line, l.stream])).toEqual([
      ['web 1', 'STDOUT'],
      ['web 2', 'STDERR'],
      ['web 3', 'STDOUT'],
    ]);
    expect(linesOf(await readLogs({ podId, container: 'web', tail: 2 }))).toEqual(['web 2', 'web 3']);
    expect(linesOf(await readLogs({ podId, container: 'sidecar', tail: 2 }))).toEqual(['noise 2498', 'noise 2499']);
    expect(linesOf(await readLogs({ podId, container: 'nobody' }))).toEqual([]);
  });

  it('filters by capture time with since (inclusive), whenever the lines were appended', async () => {
    const podId = await podOfA();
    const now = Date.now();
    // Appended just now, all of them, but captured at different times (e.g. shipped after a reconnect).
    await appendLog(redis, podId, { line: 'an hour ago', timeMs: now - 3_600_000 });
    await appendLog(redis, podId, { line: 'a minute ago', timeMs: now - 60_000 });
    await appendLog(redis, podId, { container: 'sidecar', line: 'sidecar, a second ago', timeMs: now - 1000 });
    await appendLog(redis, podId, { line: 'a second ago', timeMs: now - 1000 });

    const since = new Date(now - 60_000).toISOString();
    expect(linesOf(await readLogs({ podId, since }))).toEqual([
      'a minute ago',
      'sidecar, a second ago',
      'a second ago',
    ]);
    expect(linesOf(await readLogs({ podId, since, container: 'main', tail: 1 }))).toEqual(['a second ago']);
    expect(linesOf(await readLogs({ podId, since: new Date(now + 60_000).toISOString() }))).toEqual([]);
  });

  it('uses the stream position to skip what was appended before since, without reading it', async () => {
    const podId = await podOfA();
    // Entries with explicit ids far in the past: appended (by Redis' clock) long before `since`.
    await redis.xadd(logStreamKey(podId), '1000-0', 'c', 'main', 's', 'o', 'l', 'ancient', 't', String(Date.now()));
    await appendLog(redis, podId, { line: 'recent' });
    expect(linesOf(await readLogs({ podId, since: new Date(Date.now() - 60_000).toISOString() }))).toEqual(['recent']);
    expect(linesOf(await readLogs({ podId }))).toEqual(['ancient', 'recent']);
  });

  it('skips entries a node got wrong, cuts over-long lines, and answers [] for a pod without output', async () => {
    const podId = await podOfA();
    const key = logStreamKey(podId);
    await redis.xadd(key, '*', 's', 'o', 'l', 'no container');
    await redis.xadd(key, '*', 'c', 'web', 's', 'x', 'l', 'unknown stream');
    await redis.xadd(key, '*', 'c', '../../etc', 's', 'o', 'l', 'bad container name');
    await redis.xadd(key, '*', 'c', 'web', 's', 'o', 'l', 'x'.repeat(POD_LOG_LINE_MAX_BYTES + 100));
    await redis.xadd(key, '*', 'c', 'web', 's', 'e', 'l', 'no capture time');
    const lines = dataOf(await readLogs({ podId })).podLogs;
    expect(lines.map((l: { line: string }) => l.line.length)).toEqual([
      POD_LOG_LINE_MAX_BYTES,
      'no capture time'.length,
    ]);
    // Without a capture time, the append time stands in.
    expect(Date.parse(lines[1].timestamp)).toBe(Number(lines[1].seq.split('-')[0]));

    expect(dataOf(await readLogs({ podId: await podOfA() })).podLogs).toEqual([]);
  });

  it('bounds tail to 1..5000 and reads at most 5000 lines', async () => {
    const podId = await podOfA();
    for (const tail of [0, -1, 5001, 1_000_000]) {
      const response = await readLogs({ podId, tail });
      expectError(response, 'BAD_USER_INPUT', 'INVALID_LOG_QUERY');
      expect(response.body.data).toBeNull();
    }
    const pipeline = redis.pipeline();
    for (let i = 0; i < 5200; i++) pipeline.xadd(logStreamKey(podId), '*', 'c', 'web', 's', 'o', 'l', `${i}`);
    await pipeline.exec();
    const lines = linesOf(await readLogs({ podId, tail: 5000 }));
    expect(lines).toHaveLength(5000);
    expect([lines[0], lines[4999]]).toEqual(['200', '5199']);
  });

  it('refuses malformed arguments with BAD_USER_INPUT', async () => {
    const podId = await podOfA();
    expectError(await readLogs({ podId: 'pod-1' }), 'BAD_USER_INPUT', 'INVALID_ID');
    expectError(await readLogs({ podId, container: 'Web_1' }), 'BAD_USER_INPUT', 'INVALID_LOG_QUERY');
    expectError(await readLogs({ podId, since: 'yesterday' }), 'BAD_USER_INPUT');
    expectError(await readLogs({ podId, tail: 'ten' }), 'BAD_USER_INPUT');
  });

  it("answers NOT_FOUND for another tenant's pod, exactly as for a pod that does not exist", async () => {
    const podId = await podOfA();
    await appendLog(redis, podId, { line: 'private to A' });
    const foreign = await readLogs({ podId }, tenantB.ownerToken);
    expectError(foreign, 'NOT_FOUND', 'POD_NOT_FOUND');
    expect(foreign.body.data).toBeNull();
    expect(foreign.text).not.toContain('private to A');
    const missing = await readLogs({ podId: randomUUID() }, tenantB.ownerToken);
    expect(firstError(foreign)).toEqual(firstError(missing));
    expect(foreign.body.errors?.[0]?.message).toBe(missing.body.errors?.[0]?.message);
    // A still reads its own.
    expect(linesOf(await readLogs({ podId }))).toEqual(['private to A']);
  });

  it('is for tenants (VIEWER and up), not the operator', async () => {
    const podId = await podOfA();
    expectError(await readLogs({ podId }, api.operatorToken), 'FORBIDDEN', 'TENANT_ONLY');
    expectError(await api.gql(POD_LOGS, { podId }), 'UNAUTHENTICATED', 'NOT_AUTHENTICATED');
  });

  it('reads the streams of every node the pod ran on, merged in capture order', async () => {
    const first = await newNode();
    const second = await newNode();
    const podId = await insertPod(api, tenantA.tenantId, { nodeId: first });
    const t0 = Date.now() - 60_000;
    await appendLog(redis, podId, { line: 'on first 1', timeMs: t0 }, first);
    await appendLog(redis, podId, { line: 'on first 2', timeMs: t0 + 10 }, first);
    await placePod(api, podId, second);
    await appendLog(redis, podId, { line: 'on second 1', timeMs: t0 + 20 }, second);
    // The first node flushing its last line late: appended after, captured before.
    await appendLog(redis, podId, { line: 'on first 3', timeMs: t0 + 15 }, first);
    await appendLog(redis, podId, { container: 'web', line: 'on second 2', timeMs: t0 + 30 }, second);

    expect(linesOf(await readLogs({ podId }))).toEqual([
      'on first 1',
      'on first 2',
      'on first 3',
      'on second 1',
      'on second 2',
    ]);
    expect(linesOf(await readLogs({ podId, tail: 2 }))).toEqual(['on second 1', 'on second 2']);
    expect(linesOf(await readLogs({ podId, tail: 3, container: 'main' }))).toEqual([
      'on first 2',
      'on first 3',
      'on second 1',
    ]);
    expect(linesOf(await readLogs({ podId, since: new Date(t0 + 15).toISOString() }))).toEqual([
      'on first 3',
      'on second 1',
      'on second 2',
    ]);
    // Still read once the pod is placed nowhere (pending): its Scheduled events name both nodes.
    await placePod(api, podId, null);
    expect(linesOf(await readLogs({ podId, tail: 2 }))).toEqual(['on second 1', 'on second 2']);
  });

  it("keeps each node's append order when capture times go back (a guest clock stepped back)", async () => {
    const podId = await podOfA();
    const t = Date.now();
    await appendLog(redis, podId, { line: 'before the step', timeMs: t });
    await appendLog(redis, podId, { line: 'after the step', timeMs: t - 5000 });
    expect(linesOf(await readLogs({ podId }))).toEqual(['before the step', 'after the step']);
  });

  it('never returns what a node the pod was not placed on wrote for it', async () => {
    const podId = await podOfA();
    const stranger = await newNode();
    const t = Date.now();
    await appendLog(redis, podId, { line: 'genuine', timeMs: t - 1000 });
    await appendLog(redis, podId, { line: 'forged by another node', timeMs: t }, stranger);
    // Nor a Scheduled event of another pod naming that node, nor the old shared key.
    const otherPod = await insertPod(api, tenantA.tenantId, { nodeId: stranger });
    await appendLog(redis, otherPod, { line: "the other pod's" }, stranger);
    await redis.xadd(`caas:logs:pod:${podId}`, '*', 'c', 'main', 's', 'o', 'l', 'old key', 't', String(t));
    try {
      expect(linesOf(await readLogs({ podId }))).toEqual(['genuine']);
      const unplaced = await insertPod(api, tenantA.tenantId, { nodeId: null });
      await appendLog(redis, unplaced, { line: 'forged for a pending pod' }, stranger);
      expect(linesOf(await readLogs({ podId: unplaced }))).toEqual([]);
    } finally {
      await redis.del(`caas:logs:pod:${podId}`);
    }
  });
});
