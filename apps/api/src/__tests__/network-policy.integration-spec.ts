import { randomUUID } from 'node:crypto';
import type { CreatedTenant, Data, GqlResponse, TestApi } from './support/test-api';
import { dataOf, expectError, startTestApi, uniqueSlug } from './support/test-api';

let api: TestApi;

beforeAll(async () => {
  api = await startTestApi();
});

afterAll(async () => {
  await api?.close();
});

const POLICY = `
  fragment Peer on NetworkPolicyPeer { podSelector { matchLabels { key value } } ipBlock { cidr except } }
  fragment Port on NetworkPolicyPort { protocol port endPort }
  fragment Policy on NetworkPolicy {
    id name generation createdAt updatedAt policyTypes
    podSelector { matchLabels { key value } }
    ingress { from { ...Peer } ports { ...Port } }
    egress { to { ...Peer } ports { ...Port } }
    deny { direction priority peers { ...Peer } ports { ...Port } }
  }`;
const CREATE = `mutation ($input: CreateNetworkPolicyInput!) { createNetworkPolicy(input: $input) { ...Policy } } ${POLICY}`;
const UPDATE = `mutation ($id: ID!, $input: UpdateNetworkPolicyInput!) {
  updateNetworkPolicy(id: $id, input: $input) { ...Policy } } ${POLICY}`;
const DELETE = `mutation ($id: ID!) { deleteNetworkPolicy(id: $id) { ...Policy } } ${POLICY}`;
const GET = `query ($id: ID!) { networkPolicy(id: $id) { ...Policy } } ${POLICY}`;
const LIST = `query ($first: Int, $after: String) {
  networkPolicies(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id name generation } }
  }
}`;

const create = (token: string, input: Data) => api.gql(CREATE, { input }, token);
const update = (token: string, id: string, input: Data) => api.gql(UPDATE, { id, input }, token);

async function created(token: string, input: Data): Promise<Data> {
  return dataOf(await create(token, input)).createNetworkPolicy;
}

const outboxOf = (aggregateId: string) =>
  api.prisma.outboxMessage.findMany({ where: { aggregateId }, orderBy: { id: 'asc' } });

/** The tenant's policy rows and network-policy outbox rows, to prove a refusal wrote nothing. */
async function footprint(tenantId: string) {
  const [policies, outbox] = await Promise.all([
    api.prisma.networkPolicy.findMany({ where: { tenantId }, orderBy: { id: 'asc' } }),
    api.prisma.outboxMessage.findMany({ where: { tenantId, aggregateType: 'network-policy' }, orderBy: { id: 'asc' } }),
  ]);
  return { policies, outbox };
}

const FULL_INPUT = {
  name: 'db-access',
  podSelector: {
    matchLabels: [
      { key: 'tier', value: 'db' },
      { key: 'app.example.com/name', value: 'pg' },
    ],
  },
  ingress: [
    {
      from: [{ podSelector: { matchLabels: [{ key: 'app', value: 'api' }] } }, { ipBlock: { cidr: '10.0.0.0/8' } }],
      ports: [{ port: 5432 }, { protocol: 'UDP', port: 53, endPort: 53 }, { protocol: 'SCTP' }],
    },
  ],
  egress: [
    { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '192.168.0.0/16'] } }], ports: [] },
    { ports: [{ port: 8000, endPort: 8100 }] },
  ],
  deny: [
    { direction: 'EGRESS', priority: 10, peers: [{ ipBlock: { cidr: '169.254.0.0/16' } }] },
    { direction: 'INGRESS', priority: 0, ports: [{ protocol: 'UDP' }] },
  ],
};

describe('createNetworkPolicy', () => {
  let tenant: CreatedTenant;
  beforeAll(async () => {
    tenant = await api.createTenant();
  });

  it('creates the smallest policy with every default visible, at generation 1, with its outbox row', async () => {
    const policy = await created(tenant.ownerToken, { name: 'deny-all-ingress', podSelector: {} });
    expect(policy).toEqual({
      id: expect.any(String),
      name: 'deny-all-ingress',
      generation: 1,
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
      policyTypes: ['INGRESS'],
      podSelector: { matchLabels: [] },
      ingress: [],
      egress: [],
      deny: [],
    });

    const row = await api.prisma.networkPolicy.findUniqueOrThrow({ where: { id: policy.id } });
    expect(row).toMatchObject({
      tenantId: tenant.tenantId,
      name: 'deny-all-ingress',
      generation: 1,
      podSelector: { matchLabels: {} },
      policyTypes: ['INGRESS'],
      ingress: [],
      egress: [],
      deny: [],
    });
    const outbox = await outboxOf(policy.id);
    expect(outbox).toEqual([
      expect.objectContaining({
        aggregateType: 'network-policy',
        aggregateId: policy.id,
        tenantId: tenant.tenantId,
        generation: 1,
        kind: 'network-policy.created',
        payload: { name: 'deny-all-ingress' },
        sentAt: null,
      }),
    ]);
  });

  it('normalises a full policy: labels sorted, TCP filled in, EGRESS added, endPort = port dropped', async () => {
    const policy = await created(tenant.ownerToken, FULL_INPUT);
    const peerOf = (selector: Data | null, ipBlock: Data | null) => ({ podSelector: selector, ipBlock });
    expect(policy).toMatchObject({
      name: 'db-access',
      generation: 1,
      policyTypes: ['INGRESS', 'EGRESS'],
      podSelector: {
        matchLabels: [
          { key: 'app.example.com/name', value: 'pg' },
          { key: 'tier', value: 'db' },
        ],
      },
      ingress: [
        {
          from: [
            peerOf({ matchLabels: [{ key: 'app', value: 'api' }] }, null),
            peerOf(null, { cidr: '10.0.0.0/8', except: [] }),
          ],
          ports: [
            { protocol: 'TCP', port: 5432, endPort: null },
            { protocol: 'UDP', port: 53, endPort: null },
            { protocol: 'SCTP', port: null, endPort: null },
          ],
        },
      ],
      egress: [
        { to: [peerOf(null, { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '192.168.0.0/16'] })], ports: [] },
        { to: [], ports: [{ protocol: 'TCP', port: 8000, endPort: 8100 }] },
      ],
      deny: [
        { direction: 'EGRESS', priority: 10, peers: [peerOf(null, { cidr: '169.254.0.0/16', except: [] })], ports: [] },
        { direction: 'INGRESS', priority: 0, peers: [], ports: [{ protocol: 'UDP', port: null, endPort: null }] },
      ],
    });

    // Stored in the one shape the compiler reads (docs/adr-004-network-policy-model.md).
    const row = await api.prisma.networkPolicy.findUniqueOrThrow({ where: { id: policy.id } });
    expect({
      podSelector: row.podSelector,
      policyTypes: row.policyTypes,
      ingress: row.ingress,
      egress: row.egress,
      deny: row.deny,
    }).toEqual({
      podSelector: { matchLabels: { 'app.example.com/name': 'pg', tier: 'db' } },
      policyTypes: ['INGRESS', 'EGRESS'],
      ingress: [
        {
          from: [{ podSelector: { matchLabels: { app: 'api' } } }, { ipBlock: { cidr: '10.0.0.0/8', except: [] } }],
          ports: [
            { protocol: 'TCP', port: 5432, endPort: null },
            { protocol: 'UDP', port: 53, endPort: null },
            { protocol: 'SCTP', port: null, endPort: null },
          ],
        },
      ],
      egress: [
        { to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '192.168.0.0/16'] } }], ports: [] },
        { to: [], ports: [{ protocol: 'TCP', port: 8000, endPort: 8100 }] },
      ],
      deny: [
        { direction: 'EGRESS', priority: 10, peers: [{ ipBlock: { cidr: '169.254.0.0/16', except: [] } }], ports: [] },
        { direction: 'INGRESS', priority: 0, peers: [], ports: [{ protocol: 'UDP', port: null, endPort: null }] },
      ],
    });
  });

  it('refuses a name already used in the tenant with CONFLICT, writing nothing', async () => {
    await created(tenant.ownerToken, { name: 'unique-name', podSelector: {} });
    const before = await footprint(tenant.tenantId);
    const response = await create(tenant.ownerToken, { name: 'unique-name', podSelector: {}, ingress: [{}] });
    expectError(response, 'CONFLICT', 'NETWORK_POLICY_NAME_TAKEN');
    expect(response.body.errors?.[0].message).toBe(
      'A network policy named "unique-name" already exists in this tenant.',
    );
    expect(response.body.data).toBeNull();
    expect(await footprint(tenant.tenantId)).toEqual(before);
  });

  it('lets another tenant use the same name', async () => {
    const other = await api.createTenant();
    await created(tenant.ownerToken, { name: 'shared-name', podSelector: {} });
    expect((await created(other.ownerToken, { name: 'shared-name', podSelector: {} })).generation).toBe(1);
  });

  it('is for ADMIN and OWNER only: a MEMBER is FORBIDDEN and nothing is written', async () => {
    const own = await api.createTenant();
    const member = await api.tokenWithRole(own.ownerToken, 'MEMBER');
    const admin = await api.tokenWithRole(own.ownerToken, 'ADMIN');
    const before = await footprint(own.tenantId);
    const refused = await create(member, { name: 'by-member', podSelector: {} });
    expectError(refused, 'FORBIDDEN', 'ROLE_TOO_LOW');
    expect(refused.body.data).toBeNull();
    expect(await footprint(own.tenantId)).toEqual(before);
    expect((await created(admin, { name: 'by-admin', podSelector: {} })).name).toBe('by-admin');
  });
});

describe('networkPolicy and networkPolicies', () => {
  it('reads one policy back exactly as created, for every role down to VIEWER', async () => {
    const tenant = await api.createTenant();
    const viewer = await api.tokenWithRole(tenant.ownerToken, 'VIEWER');
    const policy = await created(tenant.ownerToken, FULL_INPUT);
    expect(dataOf(await api.gql(GET, { id: policy.id }, viewer)).networkPolicy).toEqual(policy);
  });

  it('answers NOT_FOUND for an unknown id and BAD_USER_INPUT for a malformed one', async () => {
    const tenant = await api.createTenant();
    const response = await api.gql(GET, { id: randomUUID() }, tenant.ownerToken);
    expectError(response, 'NOT_FOUND', 'NETWORK_POLICY_NOT_FOUND');
    expect(response.body.data).toBeNull();
    expectError(await api.gql(GET, { id: 'db-access' }, tenant.ownerToken), 'BAD_USER_INPUT', 'INVALID_ID');
  });

  it('pages through the tenant policies in creation order', async () => {
    const tenant = await api.createTenant();
    const viewer = await api.tokenWithRole(tenant.ownerToken, 'VIEWER');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await created(tenant.ownerToken, { name: `p${i}`, podSelector: {} })).id);

    const seen: string[] = [];
    const shapes: [number, boolean][] = [];
    let after: string | null = null;
    do {
      const { networkPolicies }: Data = dataOf(await api.gql(LIST, { first: 2, after }, viewer));
      expect(networkPolicies.totalCount).toBe(5);
      shapes.push([networkPolicies.edges.length, networkPolicies.pageInfo.hasNextPage]);
      seen.push(...networkPolicies.edges.map((edge: Data) => edge.node.id));
      after = networkPolicies.pageInfo.hasNextPage ? networkPolicies.pageInfo.endCursor : null;
    } while (after !== null && shapes.length < 10);
    expect(shapes).toEqual([
      [2, true],
      [2, true],
      [1, false],
    ]);
    expect(seen).toEqual(ids);
  });

  it('refuses a page larger than the maximum and an invalid cursor', async () => {
    const tenant = await api.createTenant();
    expectError(await api.gql(LIST, { after: '!!!' }, tenant.ownerToken), 'BAD_USER_INPUT', 'INVALID_CURSOR');
    const tooLarge = await api.gql(LIST, { first: api.config.GRAPHQL_MAX_PAGE_SIZE + 1 }, tenant.ownerToken);
    expect(tooLarge.body.errors?.[0].extensions.code).toBe('BAD_USER_INPUT');
  });
});

describe('updateNetworkPolicy', () => {
  it('replaces the whole spec (and the name), bumping the generation with one outbox row each time', async () => {
    const tenant = await api.createTenant();
    const original = await created(tenant.ownerToken, FULL_INPUT);

    const first = dataOf(
      await update(tenant.ownerToken, original.id, {
        name: 'db-access-v2',
        podSelector: { matchLabels: [{ key: 'tier', value: 'db' }] },
        policyTypes: ['EGRESS'],
        egress: [{ to: [{ podSelector: {} }], ports: [{ protocol: 'UDP', port: 53 }] }],
      }),
    ).updateNetworkPolicy;
    expect(first).toEqual({
      id: original.id,
      name: 'db-access-v2',
      generation: 2,
      createdAt: original.createdAt,
      updatedAt: expect.any(String),
      policyTypes: ['EGRESS'],
      podSelector: { matchLabels: [{ key: 'tier', value: 'db' }] },
      ingress: [],
      egress: [
        {
          to: [{ podSelector: { matchLabels: [] }, ipBlock: null }],
          ports: [{ protocol: 'UDP', port: 53, endPort: null }],
        },
      ],
      deny: [],
    });
    expect(new Date(first.updatedAt).getTime()).toBeGreaterThan(new Date(original.updatedAt).getTime());

    const second = dataOf(
      await update(tenant.ownerToken, original.id, { name: 'db-access-v2', podSelector: {} }),
    ).updateNetworkPolicy;
    expect(second).toMatchObject({
      generation: 3,
      policyTypes: ['INGRESS'],
      egress: [],
      podSelector: { matchLabels: [] },
    });

    const row = await api.prisma.networkPolicy.findUniqueOrThrow({ where: { id: original.id } });
    expect(row).toMatchObject({ name: 'db-access-v2', generation: 3, egress: [], podSelector: { matchLabels: {} } });
    expect(dataOf(await api.gql(GET, { id: original.id }, tenant.ownerToken)).networkPolicy).toEqual(second);

    const outbox = await outboxOf(original.id);
    expect(
      outbox.map(({ kind, generation, tenantId, aggregateType }) => ({ kind, generation, tenantId, aggregateType })),
    ).toEqual([
      { kind: 'network-policy.created', generation: 1, tenantId: tenant.tenantId, aggregateType: 'network-policy' },
      { kind: 'network-policy.updated', generation: 2, tenantId: tenant.tenantId, aggregateType: 'network-policy' },
      { kind: 'network-policy.updated', generation: 3, tenantId: tenant.tenantId, aggregateType: 'network-policy' },
    ]);
    expect(outbox[1].payload).toEqual({ name: 'db-access-v2' });
  });

  it('refuses a rename to a name taken in the tenant with CONFLICT, changing nothing', async () => {
    const tenant = await api.createTenant();
    await created(tenant.ownerToken, { name: 'taken', podSelector: {} });
    const policy = await created(tenant.ownerToken, { name: 'mine', podSelector: {} });
    const before = await footprint(tenant.tenantId);
    const response = await update(tenant.ownerToken, policy.id, { name: 'taken', podSelector: {}, ingress: [{}] });
    expectError(response, 'CONFLICT', 'NETWORK_POLICY_NAME_TAKEN');
    expect(response.body.data).toBeNull();
    expect(await footprint(tenant.tenantId)).toEqual(before);
  });

  it('answers NOT_FOUND for an unknown id, writing nothing', async () => {
    const tenant = await api.createTenant();
    const before = await footprint(tenant.tenantId);
    const response = await update(tenant.ownerToken, randomUUID(), { name: 'ghost', podSelector: {} });
    expectError(response, 'NOT_FOUND', 'NETWORK_POLICY_NOT_FOUND');
    expect(await footprint(tenant.tenantId)).toEqual(before);
  });

  it('never loses one of 10 concurrent updates: each winner has its own generation and outbox row', async () => {
    const tenant = await api.createTenant();
    const policy = await created(tenant.ownerToken, { name: 'contended', podSelector: {} });
    const responses = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        update(tenant.ownerToken, policy.id, {
          name: 'contended',
          podSelector: { matchLabels: [{ key: 'writer', value: `w${i}` }] },
        }),
      ),
    );

    const winners: Data[] = [];
    for (const response of responses) {
      if (response.body.errors === undefined) winners.push(dataOf(response).updateNetworkPolicy);
      else {
        expectError(response, 'CONFLICT', 'NETWORK_POLICY_CHANGED_CONCURRENTLY');
        expect(response.body.data).toBeNull();
      }
    }
    expect(winners.length).toBeGreaterThanOrEqual(1);
    const generations = winners.map((w) => w.generation).sort((a, b) => a - b);
    expect(generations).toEqual(Array.from({ length: winners.length }, (_, i) => i + 2));

    // The row holds the last winner's spec at the last generation.
    const last = winners.find((w) => w.generation === winners.length + 1) as Data;
    const row = await api.prisma.networkPolicy.findUniqueOrThrow({ where: { id: policy.id } });
    expect(row.generation).toBe(winners.length + 1);
    expect(row.podSelector).toEqual({ matchLabels: { writer: last.podSelector.matchLabels[0].value } });

    const updates = (await outboxOf(policy.id)).filter((m) => m.kind === 'network-policy.updated');
    expect(updates.map((m) => m.generation)).toEqual(generations);
  });

  it('keeps generations unique when updates race a delete', async () => {
    const tenant = await api.createTenant();
    const policy = await created(tenant.ownerToken, { name: 'racing', podSelector: {} });
    const responses = await Promise.all([
      ...Array.from({ length: 5 }, () => update(tenant.ownerToken, policy.id, { name: 'racing', podSelector: {} })),
      api.gql(DELETE, { id: policy.id }, tenant.ownerToken),
    ]);
    const deleted = responses.at(-1) as GqlResponse;
    expect(dataOf(deleted).deleteNetworkPolicy.id).toBe(policy.id);
    for (const response of responses.slice(0, -1)) {
      if (response.body.errors !== undefined) {
        expect(['CONFLICT', 'NOT_FOUND']).toContain(response.body.errors[0].extensions.code);
      }
    }
    expect(await api.prisma.networkPolicy.findUnique({ where: { id: policy.id } })).toBeNull();
    const outbox = await outboxOf(policy.id);
    const generations = outbox.map((m) => m.generation);
    expect(generations).toEqual(Array.from({ length: outbox.length }, (_, i) => i + 1));
    expect(outbox.at(-1)).toMatchObject({ kind: 'network-policy.deleted', generation: outbox.length });
    expect(dataOf(deleted).deleteNetworkPolicy.generation).toBe(outbox.length);
  });
});

describe('deleteNetworkPolicy', () => {
  it('deletes, returns what it was with the generation of its deletion, and frees the name', async () => {
    const tenant = await api.createTenant();
    const policy = await created(tenant.ownerToken, FULL_INPUT);
    const updated = dataOf(await update(tenant.ownerToken, policy.id, FULL_INPUT)).updateNetworkPolicy;

    const deleted = dataOf(await api.gql(DELETE, { id: policy.id }, tenant.ownerToken)).deleteNetworkPolicy;
    expect(deleted).toEqual({ ...updated, generation: 3 });
    expect(await api.prisma.networkPolicy.findUnique({ where: { id: policy.id } })).toBeNull();
    expect((await outboxOf(policy.id)).map(({ kind, generation }) => [kind, generation])).toEqual([
      ['network-policy.created', 1],
      ['network-policy.updated', 2],
      ['network-policy.deleted', 3],
    ]);

    for (const response of [
      await api.gql(DELETE, { id: policy.id }, tenant.ownerToken),
      await api.gql(GET, { id: policy.id }, tenant.ownerToken),
      await update(tenant.ownerToken, policy.id, FULL_INPUT),
    ]) {
      expectError(response, 'NOT_FOUND', 'NETWORK_POLICY_NOT_FOUND');
    }
    expect(dataOf(await api.gql(LIST, {}, tenant.ownerToken)).networkPolicies).toMatchObject({
      totalCount: 0,
      edges: [],
    });
    expect((await outboxOf(policy.id)).length).toBe(3);
    expect((await created(tenant.ownerToken, FULL_INPUT)).generation).toBe(1);
  });

  it('answers NOT_FOUND for an unknown id and BAD_USER_INPUT for a malformed one', async () => {
    const tenant = await api.createTenant();
    expectError(
      await api.gql(DELETE, { id: randomUUID() }, tenant.ownerToken),
      'NOT_FOUND',
      'NETWORK_POLICY_NOT_FOUND',
    );
    expectError(await api.gql(DELETE, { id: 'nope' }, tenant.ownerToken), 'BAD_USER_INPUT', 'INVALID_ID');
  });
});

describe('tenant isolation', () => {
  let a: CreatedTenant;
  let b: CreatedTenant;
  let aPolicy: Data;

  beforeAll(async () => {
    a = await api.createTenant(uniqueSlug('np-a'));
    b = await api.createTenant(uniqueSlug('np-b'));
    aPolicy = await created(a.ownerToken, FULL_INPUT);
  });

  it("answers NOT_FOUND to B for A's policy on every operation, and A's row and outbox stay as they were", async () => {
    const rowBefore = await api.prisma.networkPolicy.findUniqueOrThrow({ where: { id: aPolicy.id } });
    const outboxBefore = await outboxOf(aPolicy.id);
    const responses = [
      await api.gql(GET, { id: aPolicy.id }, b.ownerToken),
      await update(b.ownerToken, aPolicy.id, { name: 'hijacked', podSelector: {}, ingress: [{}] }),
      await api.gql(DELETE, { id: aPolicy.id }, b.ownerToken),
    ];
    for (const response of responses) {
      expectError(response, 'NOT_FOUND', 'NETWORK_POLICY_NOT_FOUND');
      expect(response.body.data).toBeNull();
      expect(response.text).not.toContain(aPolicy.name);
    }
    expect(await api.prisma.networkPolicy.findUniqueOrThrow({ where: { id: aPolicy.id } })).toEqual(rowBefore);
    expect(await outboxOf(aPolicy.id)).toEqual(outboxBefore);
    expect(await api.prisma.networkPolicy.count({ where: { tenantId: b.tenantId } })).toBe(0);
  });

  it("never lists A's policies to B, nor B's to A", async () => {
    const bPolicy = await created(b.ownerToken, { ...FULL_INPUT, name: 'b-only' });
    const seenBy = async (token: string) =>
      (dataOf(await api.gql(LIST, { first: 100 }, token)).networkPolicies.edges as Data[]).map((e) => e.node.id);
    expect(await seenBy(b.ownerToken)).toEqual([bPolicy.id]);
    expect(await seenBy(a.ownerToken)).toEqual([aPolicy.id]);
    expect(dataOf(await api.gql(LIST, {}, b.ownerToken)).networkPolicies.totalCount).toBe(1);
  });
});
