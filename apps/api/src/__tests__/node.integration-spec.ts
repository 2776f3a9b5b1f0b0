import { createHash, randomUUID } from 'node:crypto';
import { GraphQLSchemaHost } from '@nestjs/graphql';
import type { GraphQLObjectType } from 'graphql';
import { insertNode } from './support/stream-fixtures';
import type { CreatedTenant, TestApi } from './support/test-api';
import { dataOf, dumpDatabase, expectError, startTestApi } from './support/test-api';

let api: TestApi;
let tenant: CreatedTenant;

beforeAll(async () => {
  api = await startTestApi();
  tenant = await api.createTenant();
});

afterAll(async () => {
  await api?.close();
});

const NODE_FIELDS = `id name status cordoned draining epoch labels { key value } taints { key value effect }
  capacity { vcpus memoryMiB pods diskBytes } allocated { vcpus memoryMiB pods } diskPressure accelerator
  lastHeartbeatAt leaseExpiresAt createdAt`;
const GET_NODE = `query ($id: ID!) { node(id: $id) { ${NODE_FIELDS} } }`;
const LIST_NODES = `query ($first: Int, $after: String) {
  nodes(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id name } } }
}`;
const CREATE_JOIN_TOKEN = `mutation ($input: CreateNodeJoinTokenInput!) {
  createNodeJoinToken(input: $input) { token joinToken { id prefix expiresAt labels { key value } taints { key value effect } usedAt createdAt } }
}`;
const nodeMutation = (name: 'cordonNode' | 'uncordonNode' | 'drainNode') =>
  `mutation ($id: ID!) { ${name}(id: $id) { id cordoned draining } }`;

const asOperator = (query: string, variables?: Record<string, unknown>) => api.gql(query, variables, api.operatorToken);
const outboxOf = (nodeId: string) =>
  api.prisma.outboxMessage.findMany({ where: { aggregateId: nodeId }, orderBy: { id: 'asc' } });

describe('nodes and node(id)', () => {
  it('shows everything the control plane knows of a node', async () => {
    const heartbeat = new Date('2026-11-29T10:00:00.000Z');
    const row = await insertNode(api, {
      status: 'READY',
      epoch: 3,
      labels: { zone: 'b', 'topology.caas.example/rack': 'r7' },
      taints: [{ key: 'dedicated', value: 'tenant-x', effect: 'NO_SCHEDULE' }],
      capacityVcpus: 64,
      capacityMemoryMiB: 262_144,
      capacityPods: 110,
      capacityDiskBytes: 4_000_000_000_000n,
      allocatedVcpus: 6,
      allocatedMemoryMiB: 12_288,
      allocatedPods: 3,
      diskPressure: true,
      accelerator: 'TCG',
      lastHeartbeatAt: heartbeat,
      leaseExpiresAt: new Date(heartbeat.getTime() + 15_000),
      underlayAddress: '192.0.2.7',
    });

    const { node } = dataOf(await asOperator(GET_NODE, { id: row.id }));
    expect(node).toEqual({
      id: row.id,
      name: row.name,
      status: 'READY',
      cordoned: false,
      draining: false,
      epoch: 3,
      labels: [
        { key: 'topology.caas.example/rack', value: 'r7' },
        { key: 'zone', value: 'b' },
      ],
      taints: [{ key: 'dedicated', value: 'tenant-x', effect: 'NO_SCHEDULE' }],
      capacity: { vcpus: 64, memoryMiB: 262_144, pods: 110, diskBytes: 4_000_000_000_000 },
      allocated: { vcpus: 6, memoryMiB: 12_288, pods: 3 },
      diskPressure: true,
      accelerator: 'TCG',
      lastHeartbeatAt: '2026-11-29T10:00:00.000Z',
      leaseExpiresAt: '2026-11-29T10:00:15.000Z',
      createdAt: row.createdAt.toISOString(),
    });
  });

  it('shows a node that just joined with its defaults (no heartbeat, lease or accelerator yet)', async () => {
    const row = await insertNode(api);
    const { node } = dataOf(await asOperator(GET_NODE, { id: row.id }));
    expect(node).toMatchObject({
      status: 'REGISTERED',
      epoch: 1,
      labels: [],
      taints: [],
      allocated: { vcpus: 0, memoryMiB: 0, pods: 0 },
      capacity: { vcpus: 32, memoryMiB: 65_536, pods: 50, diskBytes: 0 },
      accelerator: null,
      lastHeartbeatAt: null,
      leaseExpiresAt: null,
    });
  });

  it('pages through every node, oldest first, with a total', async () => {
    const fresh = await startTestApi();
    try {
      const names: string[] = [];
      for (let i = 0; i < 5; i++) names.push((await insertNode(fresh)).name);
      const first = dataOf(await fresh.gql(LIST_NODES, { first: 2 }, fresh.operatorToken)).nodes;
      expect(first.totalCount).toBe(5);
      expect(first.pageInfo.hasNextPage).toBe(true);
      const rest = dataOf(
        await fresh.gql(LIST_NODES, { first: 10, after: first.pageInfo.endCursor }, fresh.operatorToken),
      ).nodes;
      expect(rest.pageInfo).toEqual({ hasNextPage: false, endCursor: rest.edges.at(-1).cursor });
      const seen = [...first.edges, ...rest.edges].map((edge: { node: { name: string } }) => edge.node.name);
      expect(seen).toEqual(names);
    } finally {
      await fresh.close();
    }
  });

  it('answers NOT_FOUND for an unknown node and BAD_USER_INPUT for a malformed id', async () => {
    const missing = await asOperator(GET_NODE, { id: randomUUID() });
    expectError(missing, 'NOT_FOUND', 'NODE_NOT_FOUND');
    expect(missing.body.data).toBeNull();
    expectError(await asOperator(GET_NODE, { id: 'node-1' }), 'BAD_USER_INPUT', 'INVALID_ID');
    expectError(await asOperator(LIST_NODES, { first: 100_000 }), 'BAD_USER_INPUT');
    expectError(await asOperator(LIST_NODES, { after: 'bogus' }), 'BAD_USER_INPUT', 'INVALID_CURSOR');
  });

  it('shows tenants nothing of nodes, whatever their role', async () => {
    const row = await insertNode(api, { labels: { secret: 'rack-location' } });
    for (const query of [GET_NODE, LIST_NODES]) {
      const response = await api.gql(query, { id: row.id }, tenant.ownerToken);
      expectError(response, 'FORBIDDEN', 'OPERATOR_ONLY');
      expect(response.body.data).toBeNull();
      expect(response.text).not.toContain(row.name);
      expect(response.text).not.toContain('rack-location');
    }
  });
});

describe('createNodeJoinToken', () => {
  it('returns a caasjoin token once, with the labels and taints the node will get', async () => {
    const before = Date.now();
    const { createNodeJoinToken } = dataOf(
      await asOperator(CREATE_JOIN_TOKEN, {
        input: {
          labels: [
            { key: 'zone', value: 'a' },
            { key: 'caas.example/pool', value: '' },
          ],
          taints: [
            { key: 'dedicated', value: 'gpu', effect: 'NO_SCHEDULE' },
            { key: 'dedicated', value: 'gpu', effect: 'NO_EXECUTE' },
            { key: 'maintenance', effect: 'NO_EXECUTE' },
          ],
        },
      }),
    );
    const { token, joinToken } = createNodeJoinToken;
    expect(token).toMatch(/^caasjoin_[A-Za-z0-9_-]{43}$/);
    expect(joinToken).toEqual({
      id: expect.any(String),
      prefix: token.slice(0, 'caasjoin_'.length + 6),
      expiresAt: expect.any(String),
      labels: [
        { key: 'caas.example/pool', value: '' },
        { key: 'zone', value: 'a' },
      ],
      taints: [
        { key: 'dedicated', value: 'gpu', effect: 'NO_SCHEDULE' },
        { key: 'dedicated', value: 'gpu', effect: 'NO_EXECUTE' },
        { key: 'maintenance', value: '', effect: 'NO_EXECUTE' },
      ],
      usedAt: null,
      createdAt: expect.any(String),
    });
    // Default lifetime: an hour.
    const expiresAt = Date.parse(joinToken.expiresAt);
    expect(expiresAt).toBeGreaterThanOrEqual(before + 60 * 60_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 60 * 60_000);

    const row = await api.prisma.nodeJoinToken.findUniqueOrThrow({ where: { id: joinToken.id } });
    expect(Buffer.from(row.tokenHash)).toEqual(createHash('sha256').update(token, 'utf8').digest());
    expect(row).toMatchObject({ prefix: joinToken.prefix, nodeId: null, usedAt: null });
    expect(row.labels).toEqual({ zone: 'a', 'caas.example/pool': '' });
  });

  it('keeps no usable form of the token: not in any row, not readable through the API', async () => {
    const { token } = dataOf(await asOperator(CREATE_JOIN_TOKEN, { input: {} })).createNodeJoinToken;
    const { tables, dump } = await dumpDatabase(api);
    expect(tables).toContain('node_join_tokens');
    const secret = token.slice('caasjoin_'.length);
    expect(dump).toContain(token.slice(0, 'caasjoin_'.length + 6));
    expect(dump).not.toContain(secret);
    expect(dump).not.toContain(secret.slice(6, 30));
    expect(dump).not.toContain(Buffer.from(token).toString('hex'));

    // Shown once: no type the API serves carries the token (or its hash) after creation.
    const joinTokenType = api.app.get(GraphQLSchemaHost).schema.getType('NodeJoinToken') as GraphQLObjectType;
    expect(Object.keys(joinTokenType.getFields()).sort()).toEqual(
      ['createdAt', 'expiresAt', 'id', 'labels', 'prefix', 'taints', 'usedAt'].sort(),
    );
    // And a join token is no API credential.
    const response = await api.gql('{ viewer { kind } }', undefined, token);
    expect(response.status).toBe(401);
    expectError(response, 'UNAUTHENTICATED', 'INVALID_TOKEN');
  });

  it('accepts lifetimes from one minute to a week', async () => {
    for (const minutes of [1, 10_080]) {
      const before = Date.now();
      const { joinToken } = dataOf(
        await asOperator(CREATE_JOIN_TOKEN, { input: { expiresInMinutes: minutes } }),
      ).createNodeJoinToken;
      const lifetime = Date.parse(joinToken.expiresAt) - before;
      expect(lifetime).toBeGreaterThanOrEqual(minutes * 60_000 - 5);
      expect(lifetime).toBeLessThanOrEqual(minutes * 60_000 + 5_000);
    }
  });

  it.each([
    ['a lifetime of 0', { expiresInMinutes: 0 }, 'expiresInMinutes'],
    ['a lifetime over a week', { expiresInMinutes: 10_081 }, 'expiresInMinutes'],
    ['a negative lifetime', { expiresInMinutes: -5 }, 'expiresInMinutes'],
    ['a label key with a space', { labels: [{ key: 'bad key', value: 'x' }] }, 'labels[0].key'],
    ['an upper-case label prefix', { labels: [{ key: 'Caas.Example/x', value: 'x' }] }, 'labels[0].key'],
    ['a label value of 64 characters', { labels: [{ key: 'k', value: 'v'.repeat(64) }] }, 'labels[0].value'],
    [
      'a duplicate label key',
      {
        labels: [
          { key: 'zone', value: 'a' },
          { key: 'zone', value: 'b' },
        ],
      },
      'labels[1].key',
    ],
    ['65 labels', { labels: Array.from({ length: 65 }, (_, i) => ({ key: `k${i}`, value: 'v' })) }, 'labels'],
    ['a taint value with a slash', { taints: [{ key: 'k', value: 'a/b', effect: 'NO_SCHEDULE' }] }, 'taints[0].value'],
    [
      'the same taint twice',
      {
        taints: [
          { key: 'k', value: 'a', effect: 'NO_SCHEDULE' },
          { key: 'k', value: 'b', effect: 'NO_SCHEDULE' },
        ],
      },
      'taints[1]',
    ],
  ])('refuses %s (BAD_USER_INPUT), writing nothing', async (_name, input, path) => {
    const before = await api.prisma.nodeJoinToken.count();
    const response = await asOperator(CREATE_JOIN_TOKEN, { input });
    expectError(response, 'BAD_USER_INPUT', 'INVALID_NODE_INPUT');
    expect(response.body.errors?.[0]?.message.startsWith(`${path}:`)).toBe(true);
    expect(response.body.data).toBeNull();
    expect(await api.prisma.nodeJoinToken.count()).toBe(before);
  });

  it('refuses a taint effect outside NO_SCHEDULE | NO_EXECUTE', async () => {
    const response = await asOperator(CREATE_JOIN_TOKEN, {
      input: { taints: [{ key: 'k', effect: 'PREFER_NO_SCHEDULE' }] },
    });
    expectError(response, 'BAD_USER_INPUT');
  });

  it('refuses tenants, whatever their role, and writes nothing', async () => {
    const before = await api.prisma.nodeJoinToken.count();
    const response = await api.gql(CREATE_JOIN_TOKEN, { input: {} }, tenant.ownerToken);
    expectError(response, 'FORBIDDEN', 'OPERATOR_ONLY');
    expect(response.body.data).toBeNull();
    expect(await api.prisma.nodeJoinToken.count()).toBe(before);
  });
});

describe('cordonNode, uncordonNode, drainNode', () => {
  it('records the desired scheduling state with an outbox row per change, and nothing for a repeat', async () => {
    const node = await insertNode(api, { status: 'READY' });

    expect(dataOf(await asOperator(nodeMutation('cordonNode'), { id: node.id })).cordonNode).toEqual({
      id: node.id,
      cordoned: true,
      draining: false,
    });
    // Again: already cordoned, nothing changes.
    dataOf(await asOperator(nodeMutation('cordonNode'), { id: node.id }));
    expect(dataOf(await asOperator(nodeMutation('drainNode'), { id: node.id })).drainNode).toEqual({
      id: node.id,
      cordoned: true,
      draining: true,
    });
    dataOf(await asOperator(nodeMutation('drainNode'), { id: node.id }));
    // Uncordoning stops the drain too.
    expect(dataOf(await asOperator(nodeMutation('uncordonNode'), { id: node.id })).uncordonNode).toEqual({
      id: node.id,
      cordoned: false,
      draining: false,
    });
    dataOf(await asOperator(nodeMutation('uncordonNode'), { id: node.id }));

    const row = await api.prisma.node.findUniqueOrThrow({ where: { id: node.id } });
    expect(row).toMatchObject({ cordoned: false, draining: false, desiredVersion: 3n, status: 'READY', epoch: 1 });
    const outbox = await outboxOf(node.id);
    expect(
      outbox.map(({ aggregateType, tenantId, generation, kind, payload, sentAt }) => ({
        aggregateType,
        tenantId,
        generation,
        kind,
        payload,
        sentAt,
      })),
    ).toEqual([
      {
        aggregateType: 'node',
        tenantId: null,
        generation: 1,
        kind: 'node.cordoned',
        payload: { cordoned: true, draining: false, epoch: 1, desiredVersion: '1' },
        sentAt: null,
      },
      {
        aggregateType: 'node',
        tenantId: null,
        generation: 2,
        kind: 'node.drained',
        payload: { cordoned: true, draining: true, epoch: 1, desiredVersion: '2' },
        sentAt: null,
      },
      {
        aggregateType: 'node',
        tenantId: null,
        generation: 3,
        kind: 'node.uncordoned',
        payload: { cordoned: false, draining: false, epoch: 1, desiredVersion: '3' },
        sentAt: null,
      },
    ]);
  });

  it('drains an uncordoned node in one change (cordoned and draining)', async () => {
    const node = await insertNode(api);
    expect(dataOf(await asOperator(nodeMutation('drainNode'), { id: node.id })).drainNode).toMatchObject({
      cordoned: true,
      draining: true,
    });
    expect((await outboxOf(node.id)).map((m) => m.kind)).toEqual(['node.drained']);
  });

  it('changes a node once when the same request races with itself', async () => {
    const node = await insertNode(api);
    const responses = await Promise.all(
      Array.from({ length: 6 }, () => asOperator(nodeMutation('cordonNode'), { id: node.id })),
    );
    for (const response of responses) expect(dataOf(response).cordonNode.cordoned).toBe(true);
    expect((await outboxOf(node.id)).map((m) => [m.kind, m.generation])).toEqual([['node.cordoned', 1]]);
    expect((await api.prisma.node.findUniqueOrThrow({ where: { id: node.id } })).desiredVersion).toBe(1n);
  });

  it.each(['cordonNode', 'uncordonNode', 'drainNode'] as const)(
    '%s: NOT_FOUND for an unknown node, BAD_USER_INPUT for a malformed id, FORBIDDEN for tenants',
    async (name) => {
      const outboxBefore = await api.prisma.outboxMessage.count({ where: { aggregateType: 'node' } });
      const missing = await asOperator(nodeMutation(name), { id: randomUUID() });
      expectError(missing, 'NOT_FOUND', 'NODE_NOT_FOUND');
      expect(missing.body.data).toBeNull();
      expectError(await asOperator(nodeMutation(name), { id: '42' }), 'BAD_USER_INPUT', 'INVALID_ID');

      const node = await insertNode(api, { cordoned: name === 'uncordonNode' });
      const refused = await api.gql(nodeMutation(name), { id: node.id }, tenant.ownerToken);
      expectError(refused, 'FORBIDDEN', 'OPERATOR_ONLY');
      expect(refused.body.data).toBeNull();
      const after = await api.prisma.node.findUniqueOrThrow({ where: { id: node.id } });
      expect(after).toMatchObject({ cordoned: name === 'uncordonNode', draining: false, desiredVersion: 0n });
      expect(await api.prisma.outboxMessage.count({ where: { aggregateType: 'node' } })).toBe(outboxBefore);
    },
  );
});
