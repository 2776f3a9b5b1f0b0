import { GraphQLSchemaHost } from '@nestjs/graphql';
import type { Redis } from 'ioredis';
import { createNode, createPod, podInput } from '../pod/__tests__/pod-fixtures';
import { appendLog, deleteLogStreams, placePod, testRedis } from './support/stream-fixtures';
import type { CreatedTenant, GqlResponse, TestApi } from './support/test-api';
import { dataOf, firstError, startTestApi, uniqueSlug } from './support/test-api';
import type { ServerFrame, WsClient } from './support/ws-client';
import { connectWithToken, graphqlWsUrl } from './support/ws-client';

/**
 * The cross-tenant guarantee, operation by operation: tenant B's token against every root operation of the
 * schema, given tenant A's ids, gets NOT_FOUND (never FORBIDDEN: no existence oracle), an empty or B-only
 * answer, or FORBIDDEN for operator operations; and every row of A's is byte-for-byte unchanged afterwards.
 * A new operation fails the coverage test until it is added here.
 */
let api: TestApi;
let redis: Redis;
let a: CreatedTenant;
let b: CreatedTenant;
const ids = { pod: '', policy: '', token: '', credential: '' };
let before: string;
let ws: WsClient;

/** Every row that belongs to A, in a stable order: what must not change. */
async function snapshotOfA(): Promise<string> {
  const where = { tenantId: a.tenantId };
  const [tenant, pods, containers, ips, policies, tokens, credentials, events, outbox, members] = await Promise.all([
    api.prisma.tenant.findUniqueOrThrow({ where: { id: a.tenantId } }),
    api.prisma.pod.findMany({ where, orderBy: { id: 'asc' } }),
    api.prisma.container.findMany({ where: { pod: where }, orderBy: { id: 'asc' } }),
    api.prisma.ipAllocation.findMany({ where, orderBy: { address: 'asc' } }),
    api.prisma.networkPolicy.findMany({ where, orderBy: { id: 'asc' } }),
    api.prisma.apiToken.findMany({ where, orderBy: { id: 'asc' } }),
    api.prisma.registryCredential.findMany({ where, orderBy: { id: 'asc' } }),
    api.prisma.event.findMany({ where, orderBy: { id: 'asc' } }),
    api.prisma.outboxMessage.findMany({ where, orderBy: { id: 'asc' } }),
    api.prisma.member.findMany({ where, orderBy: { id: 'asc' } }),
  ]);
  const replacer = (_key: string, value: unknown) =>
    typeof value === 'bigint'
      ? value.toString()
      : value instanceof Uint8Array
        ? Buffer.from(value).toString('hex')
        : value;
  return JSON.stringify(
    { tenant, pods, containers, ips, policies, tokens, credentials, events, outbox, members },
    replacer,
  );
}

const asB = (query: string, variables?: Record<string, unknown>) => api.gql(query, variables, b.ownerToken);
const outcome = (response: GqlResponse) => {
  const { code, reason } = firstError(response);
  expect(response.body.data).toBeNull();
  return `${code}/${reason}`;
};
const notFound = async (query: string, variables: Record<string, unknown>) =>
  expect(outcome(await asB(query, variables))).toMatch(/^NOT_FOUND\//);
const forbidden = async (query: string, variables?: Record<string, unknown>) =>
  expect(outcome(await asB(query, variables))).toBe('FORBIDDEN/OPERATOR_ONLY');
const refusalOf = (frame: ServerFrame): string => {
  const error = frame.type === 'error' ? frame.payload[0] : frame.type === 'next' ? frame.payload.errors?.[0] : null;
  if (!error) throw new Error(`expected an error, got ${JSON.stringify(frame)}`);
  return `${error.extensions.code}/${error.extensions.reason}`;
};
/** B's answer must not mention any of A's ids. */
const mentionsNoneOfA = (response: GqlResponse) => {
  const text = JSON.stringify(response.body);
  for (const id of [a.tenantId, ...Object.values(ids)]) expect(text).not.toContain(id);
};

const POLICY_INPUT = { name: 'allow-web', podSelector: {}, ingress: [{ ports: [{ port: 8080 }] }] };

const CASES: Record<string, () => Promise<void>> = {
  'Query.viewer': async () => {
    const response = await asB('{ viewer { tenant { id } } }');
    expect(dataOf(response).viewer.tenant.id).toBe(b.tenantId);
  },
  'Query.tenant': async () => expect(dataOf(await asB('{ tenant { id } }')).tenant.id).toBe(b.tenantId),
  'Query.quota': async () => expect(dataOf(await asB('{ quota { usedPods } }')).quota.usedPods).toBe(0),
  'Query.pods': async () => {
    const response = await asB('{ pods { totalCount edges { node { id } } } }');
    expect(dataOf(response).pods.totalCount).toBe(0);
    mentionsNoneOfA(response);
  },
  'Query.pod': () => notFound('query ($id: ID!) { pod(id: $id) { id } }', { id: ids.pod }),
  'Query.events': async () => {
    await notFound('query ($id: ID) { events(podId: $id) { totalCount } }', { id: ids.pod });
    const all = await asB('{ events { edges { node { id podId message } } } }');
    expect(dataOf(all).events.edges).toEqual([]);
  },
  'Query.podLogs': () => notFound('query ($id: ID!) { podLogs(podId: $id) { line } }', { id: ids.pod }),
  'Query.networkPolicies': async () => {
    const response = await asB('{ networkPolicies { totalCount edges { node { id } } } }');
    expect(dataOf(response).networkPolicies.totalCount).toBe(0);
    mentionsNoneOfA(response);
  },
  'Query.networkPolicy': () => notFound('query ($id: ID!) { networkPolicy(id: $id) { id } }', { id: ids.policy }),
  'Query.apiTokens': async () => {
    const response = await asB('{ apiTokens { edges { node { id } } } }');
    mentionsNoneOfA(response);
  },
  'Query.registryCredentials': async () => {
    const response = await asB('{ registryCredentials { totalCount edges { node { id } } } }');
    expect(dataOf(response).registryCredentials.totalCount).toBe(0);
    mentionsNoneOfA(response);
  },
  'Query.tenants': () => forbidden('{ tenants { totalCount } }'),
  'Query.nodes': () => forbidden('{ nodes { totalCount } }'),
  'Query.node': () => forbidden('query ($id: ID!) { node(id: $id) { id } }', { id: ids.pod }),
  'Mutation.createPod': async () => {
    const created = dataOf(
      await asB('mutation ($input: CreatePodInput!) { createPod(input: $input) { id } }', {
        input: podInput({ name: 'b-pod' }),
      }),
    ).createPod;
    expect((await api.prisma.pod.findUniqueOrThrow({ where: { id: created.id } })).tenantId).toBe(b.tenantId);
  },
  'Mutation.stopPod': () => notFound('mutation ($id: ID!) { stopPod(id: $id) { id } }', { id: ids.pod }),
  'Mutation.startPod': () => notFound('mutation ($id: ID!) { startPod(id: $id) { id } }', { id: ids.pod }),
  'Mutation.restartPod': () => notFound('mutation ($id: ID!) { restartPod(id: $id) { id } }', { id: ids.pod }),
  'Mutation.deletePod': () => notFound('mutation ($id: ID!) { deletePod(id: $id) { id } }', { id: ids.pod }),
  'Mutation.createNetworkPolicy': async () => {
    const created = dataOf(
      await asB('mutation ($input: CreateNetworkPolicyInput!) { createNetworkPolicy(input: $input) { id } }', {
        input: POLICY_INPUT,
      }),
    ).createNetworkPolicy;
    const row = await api.prisma.networkPolicy.findUniqueOrThrow({ where: { id: created.id } });
    expect(row.tenantId).toBe(b.tenantId);
  },
  'Mutation.updateNetworkPolicy': () =>
    notFound(
      'mutation ($id: ID!, $input: UpdateNetworkPolicyInput!) { updateNetworkPolicy(id: $id, input: $input) { id } }',
      { id: ids.policy, input: { ...POLICY_INPUT, name: 'hijacked' } },
    ),
  'Mutation.deleteNetworkPolicy': () =>
    notFound('mutation ($id: ID!) { deleteNetworkPolicy(id: $id) { id } }', { id: ids.policy }),
  'Mutation.createApiToken': async () => {
    const { token } = dataOf(
      await asB('mutation { createApiToken(input: { name: "b", role: VIEWER }) { token } }'),
    ).createApiToken;
    expect(dataOf(await api.gql('{ tenant { id } }', undefined, token)).tenant.id).toBe(b.tenantId);
  },
  'Mutation.revokeApiToken': () =>
    notFound('mutation ($id: ID!) { revokeApiToken(id: $id) { id } }', { id: ids.token }),
  'Mutation.createRegistryCredential': async () => {
    const created = dataOf(
      await asB(
        'mutation ($input: CreateRegistryCredentialInput!) { createRegistryCredential(input: $input) { id } }',
        {
          input: { registry: 'registry.a.example', username: 'b', secret: 'b-secret' },
        },
      ),
    ).createRegistryCredential;
    const row = await api.prisma.registryCredential.findUniqueOrThrow({ where: { id: created.id } });
    expect(row.tenantId).toBe(b.tenantId);
  },
  'Mutation.deleteRegistryCredential': () =>
    notFound('mutation ($id: ID!) { deleteRegistryCredential(id: $id) { id } }', { id: ids.credential }),
  'Mutation.createTenant': () =>
    forbidden(
      `mutation { createTenant(input: { slug: "${uniqueSlug()}", displayName: "x", ownerEmail: "x@x.example" }) { ownerToken } }`,
    ),
  'Mutation.updateTenantQuota': () =>
    forbidden('mutation ($id: ID!) { updateTenantQuota(tenantId: $id, input: { maxPods: 0 }) { id } }', {
      id: a.tenantId,
    }),
  'Mutation.suspendTenant': () =>
    forbidden('mutation ($id: ID!) { suspendTenant(tenantId: $id) { id } }', { id: a.tenantId }),
  'Mutation.unsuspendTenant': () =>
    forbidden('mutation ($id: ID!) { unsuspendTenant(tenantId: $id) { id } }', { id: a.tenantId }),
  'Mutation.createNodeJoinToken': () => forbidden('mutation { createNodeJoinToken(input: {}) { token } }'),
  'Mutation.cordonNode': () => forbidden('mutation ($id: ID!) { cordonNode(id: $id) { id } }', { id: ids.pod }),
  'Mutation.uncordonNode': () => forbidden('mutation ($id: ID!) { uncordonNode(id: $id) { id } }', { id: ids.pod }),
  'Mutation.drainNode': () => forbidden('mutation ($id: ID!) { drainNode(id: $id) { id } }', { id: ids.pod }),
  'Subscription.podEvents': async () => {
    const subscription = ws.subscribe('subscription ($id: ID!) { podEvents(podId: $id) { id message } }', {
      id: ids.pod,
    });
    expect(refusalOf(await subscription.take())).toMatch(/^NOT_FOUND\//);
  },
  'Subscription.podLogs': async () => {
    const subscription = ws.subscribe('subscription ($id: ID!) { podLogs(podId: $id) { line } }', { id: ids.pod });
    expect(refusalOf(await subscription.take())).toMatch(/^NOT_FOUND\//);
  },
};

beforeAll(async () => {
  api = await startTestApi();
  redis = testRedis();
  a = await api.createTenant();
  b = await api.createTenant();
  const pod = await createPod(api, a.ownerToken, {
    name: 'a-pod',
    containers: [
      { name: 'main', image: 'registry.a.example/app:1', env: [{ name: 'KEY', value: 's3', secret: true }] },
    ],
  });
  ids.pod = pod.id;
  // Placed on a node that writes its output, so that A really has output B must not see.
  const node = await createNode(api);
  await placePod(api, ids.pod, node.id);
  await appendLog(redis, ids.pod, { line: "A's private output" }, node.id);
  const own = dataOf(await api.gql('query ($id: ID!) { podLogs(podId: $id) { line } }', { id: ids.pod }, a.ownerToken))
    .podLogs as { line: string }[];
  expect(own.map((l) => l.line)).toEqual(["A's private output"]);
  ids.policy = dataOf(
    await api.gql(
      'mutation ($input: CreateNetworkPolicyInput!) { createNetworkPolicy(input: $input) { id } }',
      { input: POLICY_INPUT },
      a.ownerToken,
    ),
  ).createNetworkPolicy.id;
  const viewerToken = await api.tokenWithRole(a.ownerToken, 'VIEWER');
  ids.token = (await api.prisma.apiToken.findFirstOrThrow({ where: { tenantId: a.tenantId, role: 'VIEWER' } })).id;
  expect(viewerToken).toMatch(/^caas_/);
  ids.credential = dataOf(
    await api.gql(
      'mutation ($input: CreateRegistryCredentialInput!) { createRegistryCredential(input: $input) { id } }',
      { input: { registry: 'registry.a.example', username: 'a', secret: 'a-secret' } },
      a.ownerToken,
    ),
  ).createRegistryCredential.id;
  ws = await connectWithToken(await graphqlWsUrl(api.app), b.ownerToken);
  // A's own requests are over; only B calls from here on, so A's rows must stay exactly as they are now.
  await new Promise((resolve) => setTimeout(resolve, 200));
  before = await snapshotOfA();
});

afterAll(async () => {
  await ws?.close();
  if (redis && api) await deleteLogStreams(api, redis);
  redis?.disconnect();
  await api?.close();
});

it('covers every root operation of the schema', () => {
  const schema = api.app.get(GraphQLSchemaHost).schema;
  const operations = [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()].flatMap((type) =>
    type ? Object.keys(type.getFields()).map((field) => `${type.name}.${field}`) : [],
  );
  expect(Object.keys(CASES).sort()).toEqual(operations.sort());
});

it.each(Object.keys(CASES))("%s: tenant B gets nothing of tenant A's", async (operation) => {
  await CASES[operation]();
});

it("leaves every row of tenant A's exactly as it was", async () => {
  expect(await snapshotOfA()).toBe(before);
});
