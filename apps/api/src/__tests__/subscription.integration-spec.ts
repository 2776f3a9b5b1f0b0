import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { hashToken, issueToken } from '@caas/security';
import type { PodEventMessage } from '../common/events/pod-event-bus';
import { PodEventBus } from '../common/events/pod-event-bus';
import { POD_LOG_LIMITS } from '../pod-log/utils/pod-log-limits';
import {
  appendLog,
  deleteLogStreams,
  eventChannelSubscribers,
  insertNode,
  insertPod,
  logFollowerConnections,
  placePod,
  testRedis,
} from './support/stream-fixtures';
import type { CreatedTenant, TestApi } from './support/test-api';
import { eventually, startTestApi } from './support/test-api';
import type { ServerFrame, WsClient, WsSubscription } from './support/ws-client';
import { connectWithToken, connectWs, graphqlWsUrl } from './support/ws-client';

let api: TestApi;
/** A second API process on the same PostgreSQL and Redis (another replica behind the load balancer). */
let other: TestApi;
let url: string;
let redis: Redis;
let tenantA: CreatedTenant;
let tenantB: CreatedTenant;
let viewerA: string;
const clients: WsClient[] = [];

beforeAll(async () => {
  api = await startTestApi();
  other = await startTestApi({ DATABASE_URL: api.databaseUrl });
  url = await graphqlWsUrl(api.app);
  redis = testRedis();
  tenantA = await api.createTenant();
  tenantB = await api.createTenant();
  viewerA = await api.tokenWithRole(tenantA.ownerToken, 'VIEWER');
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
});

afterAll(async () => {
  if (redis && api) await deleteLogStreams(api, redis);
  redis?.disconnect();
  await other?.close();
  await api?.close();
});

async function connect(token: string): Promise<WsClient> {
  const client = await connectWithToken(url, token);
  clients.push(client);
  return client;
}

const POD_EVENTS = 'subscription ($podId: ID!) { podEvents(podId: $podId) { id type reason message podId createdAt } }';
const FOLLOW_LOGS = `subscription ($podId: ID!, $container: String) {
  podLogs(podId: $podId, container: $container) { seq timestamp container stream line }
}`;

function eventOf(podId: string, tenantId: string, overrides: Partial<PodEventMessage> = {}): PodEventMessage {
  return {
    id: String(Math.floor(Math.random() * 1e9)),
    tenantId,
    podId,
    type: 'NORMAL',
    reason: 'Scheduled',
    message: 'Placed on node n1',
    createdAt: new Date().toISOString(),
    ...overrides,
  };
}

/** `CODE/REASON` of an error frame (or of the first error of a data frame). */
function refusalOf(frame: ServerFrame): string {
  const error = frame.type === 'error' ? frame.payload[0] : frame.type === 'next' ? frame.payload.errors?.[0] : null;
  if (!error) throw new Error(`expected an error, got ${JSON.stringify(frame)}`);
  return `${error.extensions.code}/${error.extensions.reason}`;
}

/** Lines received on a log subscription until `count` have arrived. */
async function collectLines(subscription: WsSubscription, count: number) {
  const lines: { seq: string; container: string; stream: string; line: string; timestamp: string }[] = [];
  while (lines.length < count) lines.push(...((await subscription.data()).podLogs as typeof lines));
  return lines;
}

describe('podEvents', () => {
  it('delivers an event published by another API process, as the events query shapes it', async () => {
    const podId = await insertPod(api, tenantA.tenantId);
    const client = await connect(viewerA);
    const subscription = client.subscribe(POD_EVENTS, { podId });
    await eventually(async () => ((await eventChannelSubscribers(redis, podId)) === 1 ? true : undefined));

    const event = eventOf(podId, tenantA.tenantId, { type: 'WARNING', reason: 'BackOff', message: 'Restarting web' });
    await other.app.get(PodEventBus).publish(event);

    expect(await subscription.data()).toEqual({
      podEvents: {
        id: event.id,
        type: 'WARNING',
        reason: 'BackOff',
        message: 'Restarting web',
        podId,
        createdAt: event.createdAt,
      },
    });
  });

  it("delivers only the pod's own events, in order, and none published under another tenant", async () => {
    const podId = await insertPod(api, tenantA.tenantId);
    const otherPodId = await insertPod(api, tenantA.tenantId);
    const subscription = (await connect(viewerA)).subscribe(POD_EVENTS, { podId });
    await eventually(async () => ((await eventChannelSubscribers(redis, podId)) === 1 ? true : undefined));

    const bus = other.app.get(PodEventBus);
    await bus.publish(eventOf(otherPodId, tenantA.tenantId, { reason: 'OtherPod' }));
    await bus.publish(eventOf(podId, tenantB.tenantId, { reason: 'WrongTenant' }));
    await redis.publish(`caas:pod-events:${podId}`, '{"not":"an event"}');
    for (const reason of ['Scheduled', 'Pulling', 'Started'])
      await bus.publish(eventOf(podId, tenantA.tenantId, { reason }));

    const reasons: string[] = [];
    for (let i = 0; i < 3; i++) reasons.push(((await subscription.data()).podEvents as { reason: string }).reason);
    expect(reasons).toEqual(['Scheduled', 'Pulling', 'Started']);
    await subscription.expectQuiet(200);
  });

  it('fans one Redis subscription out to every subscriber of the pod on a process', async () => {
    const podId = await insertPod(api, tenantA.tenantId);
    const first = (await connect(viewerA)).subscribe(POD_EVENTS, { podId });
    const second = (await connect(tenantA.ownerToken)).subscribe(POD_EVENTS, { podId });
    const third = (await connect(viewerA)).subscribe(POD_EVENTS, { podId });
    const bus = other.app.get(PodEventBus);
    // Subscriptions start asynchronously: probe until every one of them receives.
    await eventually(async () => {
      await bus.publish(eventOf(podId, tenantA.tenantId, { reason: 'Probe' }));
      await new Promise((resolve) => setTimeout(resolve, 50));
      return [first, second, third].every((s) => s.frames.length > 0) ? true : undefined;
    });
    expect(await eventChannelSubscribers(redis, podId)).toBe(1);

    await bus.publish(eventOf(podId, tenantA.tenantId, { reason: 'Started' }));
    for (const subscription of [first, second, third]) {
      let reason = 'Probe';
      while (reason === 'Probe') reason = ((await subscription.data()).podEvents as { reason: string }).reason;
      expect(reason).toBe('Started');
    }
  });
});

describe('podLogs subscription', () => {
  it('delivers lines appended after it subscribed, stdout and stderr told apart, none from before', async () => {
    const podId = await insertPod(api, tenantA.tenantId);
    await appendLog(redis, podId, { line: 'before the subscription' });
    const subscription = (await connect(viewerA)).subscribe(FOLLOW_LOGS, { podId });
    await eventually(async () => ((await logFollowerConnections(redis, podId)) === 1 ? true : undefined));

    const t = Date.now();
    const seqs = [
      await appendLog(redis, podId, { container: 'web', stream: 'stdout', line: 'GET / 200', timeMs: t }),
      await appendLog(redis, podId, { container: 'web', stream: 'stderr', line: 'slow query', timeMs: t + 1 }),
      await appendLog(redis, podId, { container: 'sidecar', line: 'flushed', timeMs: t + 2 }),
    ];
    expect(await collectLines(subscription, 3)).toEqual([
      { seq: seqs[0], timestamp: new Date(t).toISOString(), container: 'web', stream: 'STDOUT', line: 'GET / 200' },
      {
        seq: seqs[1],
        timestamp: new Date(t + 1).toISOString(),
        container: 'web',
        stream: 'STDERR',
        line: 'slow query',
      },
      {
        seq: seqs[2],
        timestamp: new Date(t + 2).toISOString(),
        container: 'sidecar',
        stream: 'STDOUT',
        line: 'flushed',
      },
    ]);
  });

  it("follows one container's lines when asked", async () => {
    const podId = await insertPod(api, tenantA.tenantId);
    const subscription = (await connect(viewerA)).subscribe(FOLLOW_LOGS, { podId, container: 'web' });
    await eventually(async () => ((await logFollowerConnections(redis, podId)) === 1 ? true : undefined));
    await appendLog(redis, podId, { container: 'sidecar', line: 'not this' });
    await appendLog(redis, podId, { container: 'web', line: 'this' });
    await appendLog(redis, podId, { container: 'sidecar', line: 'nor this' });
    await appendLog(redis, podId, { container: 'web', line: 'and this' });
    expect((await collectLines(subscription, 2)).map((l) => l.line)).toEqual(['this', 'and this']);
    await subscription.expectQuiet(200);
  });

  it('delivers lines appended on a stream that did not exist when it subscribed', async () => {
    const podId = await insertPod(api, tenantA.tenantId);
    const subscription = (await connect(viewerA)).subscribe(FOLLOW_LOGS, { podId });
    await eventually(async () => ((await logFollowerConnections(redis, podId)) === 1 ? true : undefined));
    await appendLog(redis, podId, { line: 'first line ever' });
    expect((await collectLines(subscription, 1)).map((l) => l.line)).toEqual(['first line ever']);
  });

  it("delivers the current node's lines, none a node the pod is not placed on writes for it", async () => {
    const node = (await insertNode(api)).id;
    const stranger = (await insertNode(api)).id;
    const podId = await insertPod(api, tenantA.tenantId, { nodeId: node });
    const subscription = (await connect(viewerA)).subscribe(FOLLOW_LOGS, { podId });
    await eventually(async () => ((await logFollowerConnections(redis, podId)) === 1 ? true : undefined));
    await appendLog(redis, podId, { line: 'forged' }, stranger);
    await appendLog(redis, podId, { line: 'from its node' }, node);
    await appendLog(redis, podId, { line: 'forged again' }, stranger);
    expect((await collectLines(subscription, 1)).map((l) => l.line)).toEqual(['from its node']);
    await subscription.expectQuiet(300);
  });

  it('follows the pod to its next node when it is re-placed, and starts once a pending pod is placed', async () => {
    const first = (await insertNode(api)).id;
    const second = (await insertNode(api)).id;
    const podId = await insertPod(api, tenantA.tenantId, { nodeId: null });
    const subscription = (await connect(viewerA)).subscribe(FOLLOW_LOGS, { podId });
    await eventually(async () => ((await logFollowerConnections(redis, podId)) === 1 ? true : undefined));

    await placePod(api, podId, first);
    await appendLog(redis, podId, { line: 'on first' }, first);
    expect((await subscription.data(POD_LOG_LIMITS.followBlockMs + 5000)).podLogs).toMatchObject([
      { line: 'on first' },
    ]);

    await placePod(api, podId, second);
    await appendLog(redis, podId, { line: 'on second' }, second);
    // Picked up at the next look-up of the node (at the latest when a read times out).
    expect((await subscription.data(2 * POD_LOG_LIMITS.followBlockMs + 5000)).podLogs).toMatchObject([
      { line: 'on second' },
    ]);
    await appendLog(redis, podId, { line: 'more on second' }, second);
    expect((await collectLines(subscription, 1)).map((l) => l.line)).toEqual(['more on second']);
  }, 60_000);

  it('refuses malformed arguments with BAD_USER_INPUT', async () => {
    const podId = await insertPod(api, tenantA.tenantId);
    const client = await connect(viewerA);
    expect(refusalOf(await client.subscribe(FOLLOW_LOGS, { podId: 'pod-1' }).take())).toBe('BAD_USER_INPUT/INVALID_ID');
    expect(refusalOf(await client.subscribe(FOLLOW_LOGS, { podId, container: 'Web!' }).take())).toBe(
      'BAD_USER_INPUT/INVALID_LOG_QUERY',
    );
    expect(refusalOf(await client.subscribe(POD_EVENTS, { podId: 'x' }).take())).toBe('BAD_USER_INPUT/INVALID_ID');
  });

  it(`holds at most ${POD_LOG_LIMITS.maxFollowersPerTenant} log subscriptions per tenant on a process`, async () => {
    const tenant = await api.createTenant();
    const podId = await insertPod(api, tenant.tenantId);
    const client = await connect(tenant.ownerToken);
    for (let i = 0; i < POD_LOG_LIMITS.maxFollowersPerTenant; i++) client.subscribe(FOLLOW_LOGS, { podId });
    await eventually(async () =>
      (await logFollowerConnections(redis, podId)) === POD_LOG_LIMITS.maxFollowersPerTenant ? true : undefined,
    );
    const refused = client.subscribe(FOLLOW_LOGS, { podId });
    expect(refusalOf(await refused.take())).toBe('RATE_LIMITED/TOO_MANY_LOG_STREAMS');
    // Other tenants are not affected.
    const podOfA = await insertPod(api, tenantA.tenantId);
    (await connect(viewerA)).subscribe(FOLLOW_LOGS, { podId: podOfA });
    await eventually(async () => ((await logFollowerConnections(redis, podOfA)) === 1 ? true : undefined));
    // Closing the connection frees them all.
    await client.close();
    await eventually(async () => ((await logFollowerConnections(redis, podId)) === 0 ? true : undefined));
  });
});

describe('subscription authorization', () => {
  it('refuses a connection without a valid token at connect', async () => {
    const revoked = await api.tokenWithRole(tenantA.ownerToken, 'VIEWER');
    await api.prisma.apiToken.update({ where: { tokenHash: hashToken(revoked) }, data: { revokedAt: new Date() } });
    const suspendedTenant = await api.createTenant();
    await api.gql(
      `mutation { suspendTenant(tenantId: "${suspendedTenant.tenantId}") { id } }`,
      undefined,
      api.operatorToken,
    );

    const attempts: [string, Record<string, unknown> | undefined][] = [
      ['no connection_init payload', undefined],
      ['no authorization', {}],
      ['an empty authorization', { authorization: '' }],
      ['not a bearer token', { authorization: viewerA }],
      ['garbage', { authorization: 'Bearer garbage' }],
      ['a token nobody issued', { authorization: `Bearer ${issueToken().token}` }],
      ['a join token', { authorization: `Bearer ${issueToken('caasjoin').token}` }],
      ['a revoked token', { authorization: `Bearer ${revoked}` }],
      ['a suspended tenant', { authorization: `Bearer ${suspendedTenant.ownerToken}` }],
      ['a non-string authorization', { authorization: 42 }],
    ];
    for (const [name, params] of attempts) {
      const outcome = await connectWs(url, params);
      expect({ name, refusal: outcome.ok ? 'accepted' : outcome.refusal }).toEqual({
        name,
        refusal: 'connection_error: Forbidden',
      });
    }
  });

  it('refuses the upgrade itself when it carries a bad Authorization header (401, as on HTTP)', async () => {
    const outcome = await connectWs(
      url,
      { authorization: `Bearer ${viewerA}` },
      { headers: { authorization: 'Bearer x' } },
    );
    expect(outcome.ok ? 'accepted' : outcome.refusal).toBe('http 401');
  });

  it('checks the token again when each subscription starts: revoked since connect → UNAUTHENTICATED', async () => {
    const token = await api.tokenWithRole(tenantA.ownerToken, 'VIEWER');
    const podId = await insertPod(api, tenantA.tenantId);
    const client = await connect(token);
    await api.prisma.apiToken.update({ where: { tokenHash: hashToken(token) }, data: { revokedAt: new Date() } });
    const subscription = client.subscribe(POD_EVENTS, { podId });
    expect(refusalOf(await subscription.take())).toBe('UNAUTHENTICATED/INVALID_TOKEN');
    expect(await eventChannelSubscribers(redis, podId)).toBe(0);
  });

  it("answers NOT_FOUND to tenant B for A's pod, sends B nothing, and leaves nothing subscribed", async () => {
    const podId = await insertPod(api, tenantA.tenantId);
    const clientB = await connect(tenantB.ownerToken);
    const events = clientB.subscribe(POD_EVENTS, { podId });
    const logs = clientB.subscribe(FOLLOW_LOGS, { podId });
    const missing = clientB.subscribe(POD_EVENTS, { podId: randomUUID() });
    const [eventsRefusal, logsRefusal, missingRefusal] = [await events.take(), await logs.take(), await missing.take()];
    expect(refusalOf(eventsRefusal)).toBe('NOT_FOUND/POD_NOT_FOUND');
    expect(refusalOf(logsRefusal)).toBe('NOT_FOUND/POD_NOT_FOUND');
    // The same answer as for a pod that does not exist: no existence oracle.
    expect(eventsRefusal.type === 'error' && eventsRefusal.payload[0]?.message).toBe(
      missingRefusal.type === 'error' && missingRefusal.payload[0]?.message,
    );

    await other.app.get(PodEventBus).publish(eventOf(podId, tenantA.tenantId));
    await appendLog(redis, podId, { line: "A's secret output" });
    await events.expectQuiet(300);
    expect(logs.frames).toHaveLength(1);
    expect(await eventChannelSubscribers(redis, podId)).toBe(0);
    expect(await logFollowerConnections(redis, podId)).toBe(0);
  });

  it('keeps the operator out (it has no tenant)', async () => {
    const podId = await insertPod(api, tenantA.tenantId);
    const client = await connect(api.operatorToken);
    expect(refusalOf(await client.subscribe(POD_EVENTS, { podId }).take())).toBe('FORBIDDEN/TENANT_ONLY');
    expect(refusalOf(await client.subscribe(FOLLOW_LOGS, { podId }).take())).toBe('FORBIDDEN/TENANT_ONLY');
  });
});

describe('subscription documents', () => {
  it('applies the abuse limits and graphql validation to subscription documents', async () => {
    const podId = await insertPod(api, tenantA.tenantId);
    const client = await connect(viewerA);
    const aliases = Array.from({ length: 40 }, (_, i) => `a${i}: id`).join(' ');
    const cases: [string, string, string][] = [
      [`subscription ($podId: ID!) { podEvents(podId: $podId) { ${aliases} } }`, 'BAD_USER_INPUT/TOO_MANY_ALIASES', ''],
      [
        'subscription ($podId: ID!) { podEvents(podId: $podId) { id } podLogs(podId: $podId) { seq } }',
        'BAD_USER_INPUT/INVALID_QUERY',
        'Anonymous Subscription must select only one top level field.',
      ],
      [
        'subscription ($podId: ID!) { podEvents(podId: $podId) { id secretField } }',
        'BAD_USER_INPUT/INVALID_QUERY',
        'Cannot query field "secretField" on type "Event".',
      ],
      ['subscription { podEvents(podId: ', 'BAD_USER_INPUT/INVALID_QUERY', 'Syntax Error: Unexpected <EOF>.'],
      [
        'query ($podId: ID!) { podLogs(podId: $podId) { seq } }',
        'BAD_USER_INPUT/INVALID_QUERY',
        'Invalid operation: query',
      ],
    ];
    for (const [query, refusal, message] of cases) {
      const frame = await client.subscribe(query, { podId }).take();
      expect({ query, refusal: refusalOf(frame) }).toEqual({ query, refusal });
      if (message !== '' && frame.type === 'error') expect(frame.payload[0]?.message).toBe(message);
    }
    // A variable that does not coerce, and a document without the operation to run, are the request's fault.
    const podIdAsList = client.subscribe(POD_EVENTS, { podId: [podId] });
    expect(refusalOf(await podIdAsList.take())).toBe('BAD_USER_INPUT/INVALID_QUERY');
    const twoOperations = await client
      .subscribe(
        `subscription A { podEvents(podId: "${podId}") { id } } subscription B { podLogs(podId: "${podId}") { seq } }`,
      )
      .take();
    expect(refusalOf(twoOperations)).toBe('BAD_USER_INPUT/INVALID_QUERY');
    expect(twoOperations.type === 'error' && twoOperations.payload[0]?.message).toBe(
      'The subscription request is not valid.',
    );
    expect(await eventChannelSubscribers(redis, podId)).toBe(0);
    // The connection is still usable.
    const fine = client.subscribe(POD_EVENTS, { podId });
    await eventually(async () => ((await eventChannelSubscribers(redis, podId)) === 1 ? true : undefined));
    await api.app.get(PodEventBus).publish(eventOf(podId, tenantA.tenantId));
    expect(await fine.data()).toHaveProperty('podEvents.podId', podId);
  });
});

describe('cleanup', () => {
  it('unsubscribes from Redis when the subscriber stops (no leftover channel or connection)', async () => {
    const podId = await insertPod(api, tenantA.tenantId);
    const client = await connect(viewerA);
    const events = client.subscribe(POD_EVENTS, { podId });
    const logs = client.subscribe(FOLLOW_LOGS, { podId });
    await eventually(async () => ((await eventChannelSubscribers(redis, podId)) === 1 ? true : undefined));
    await eventually(async () => ((await logFollowerConnections(redis, podId)) === 1 ? true : undefined));

    events.stop();
    logs.stop();
    await eventually(async () => ((await eventChannelSubscribers(redis, podId)) === 0 ? true : undefined));
    await eventually(async () => ((await logFollowerConnections(redis, podId)) === 0 ? true : undefined));
    const channels = (await redis.call('PUBSUB', 'CHANNELS', `caas:pod-events:${podId}`)) as string[];
    expect(channels).toEqual([]);

    // Nothing more arrives on the stopped subscriptions (at most Mercurius' `complete`).
    await other.app.get(PodEventBus).publish(eventOf(podId, tenantA.tenantId));
    await appendLog(redis, podId, { line: 'after stop' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect([...events.frames, ...logs.frames].filter((frame) => frame.type !== 'complete')).toEqual([]);
  });

  it('unsubscribes when the client disconnects without stopping', async () => {
    const podId = await insertPod(api, tenantA.tenantId);
    const client = await connect(viewerA);
    client.subscribe(POD_EVENTS, { podId });
    client.subscribe(FOLLOW_LOGS, { podId });
    client.subscribe(FOLLOW_LOGS, { podId, container: 'main' });
    await eventually(async () => ((await eventChannelSubscribers(redis, podId)) === 1 ? true : undefined));
    await eventually(async () => ((await logFollowerConnections(redis, podId)) === 2 ? true : undefined));

    await client.close();
    await eventually(async () => ((await eventChannelSubscribers(redis, podId)) === 0 ? true : undefined));
    await eventually(async () => ((await logFollowerConnections(redis, podId)) === 0 ? true : undefined));
  });

  it('closes subscriptions and their Redis connections when the API shuts down', async () => {
    const instance = await startTestApi({ DATABASE_URL: api.databaseUrl });
    const podId = await insertPod(instance, tenantA.tenantId);
    const client = await connectWithToken(await graphqlWsUrl(instance.app), viewerA);
    client.subscribe(POD_EVENTS, { podId });
    client.subscribe(FOLLOW_LOGS, { podId });
    await eventually(async () => ((await eventChannelSubscribers(redis, podId)) === 1 ? true : undefined));
    await eventually(async () => ((await logFollowerConnections(redis, podId)) === 1 ? true : undefined));

    await instance.close();
    await eventually(async () => (client.isClosed ? true : undefined));
    expect(await eventChannelSubscribers(redis, podId)).toBe(0);
    expect(await logFollowerConnections(redis, podId)).toBe(0);
  });
});
