import { randomUUID } from 'node:crypto';
import { hashToken } from '@caas/security';
import type { CreatedTenant, Data, TestApi } from './support/test-api';
import { dataOf, expectError, startTestApi } from './support/test-api';

let api: TestApi;

beforeAll(async () => {
  api = await startTestApi();
});

afterAll(async () => {
  await api?.close();
});

const TOKEN_FIELDS = 'id name prefix role expiresAt revokedAt lastUsedAt createdAt';
const CREATE = `mutation ($input: CreateApiTokenInput!) {
  createApiToken(input: $input) { token apiToken { ${TOKEN_FIELDS} } }
}`;
const REVOKE = `mutation ($id: ID!) { revokeApiToken(id: $id) { ${TOKEN_FIELDS} } }`;
const LIST = `query ($first: Int, $after: String) {
  apiTokens(first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { ${TOKEN_FIELDS} } }
  }
}`;

const tokenId = async (token: string) =>
  (await api.prisma.apiToken.findUniqueOrThrow({ where: { tokenHash: hashToken(token) } })).id;

describe('createApiToken', () => {
  let tenant: CreatedTenant;
  beforeAll(async () => {
    tenant = await api.createTenant();
  });

  it('shows the token once, and the token works at once with its role', async () => {
    const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
    const { createApiToken } = dataOf(
      await api.gql(CREATE, { input: { name: '  ci deploy  ', role: 'MEMBER', expiresAt } }, tenant.ownerToken),
    );
    expect(createApiToken.token).toMatch(/^caas_[A-Za-z0-9_-]{43}$/);
    expect(createApiToken.apiToken).toEqual({
      id: expect.any(String),
      name: 'ci deploy',
      prefix: createApiToken.token.slice(0, 11),
      role: 'MEMBER',
      expiresAt,
      revokedAt: null,
      lastUsedAt: null,
      createdAt: expect.any(String),
    });

    const { viewer } = dataOf(await api.gql('{ viewer { kind role tenant { id } } }', undefined, createApiToken.token));
    expect(viewer).toEqual({ kind: 'TENANT', role: 'MEMBER', tenant: { id: tenant.tenantId } });

    // Listed afterwards, without the token itself.
    const list = await api.gql(LIST, { first: 100 }, tenant.ownerToken);
    const ids = dataOf(list).apiTokens.edges.map((e: { node: { id: string } }) => e.node.id);
    expect(ids).toContain(createApiToken.apiToken.id);
    expect(list.text).not.toContain(createApiToken.token);
    expect(list.text).not.toContain(createApiToken.token.slice(11));
  });

  it('acts for the same member as the token that created it', async () => {
    const { createApiToken } = dataOf(
      await api.gql(CREATE, { input: { name: 'child', role: 'VIEWER' } }, tenant.ownerToken),
    );
    const parent = await api.prisma.apiToken.findUniqueOrThrow({ where: { tokenHash: hashToken(tenant.ownerToken) } });
    const child = await api.prisma.apiToken.findUniqueOrThrow({ where: { id: createApiToken.apiToken.id } });
    expect(child).toMatchObject({ tenantId: tenant.tenantId, memberId: parent.memberId, role: 'VIEWER' });
    expect(createApiToken.apiToken.expiresAt).toBeNull();
  });

  it.each([
    ['ADMIN', 'ADMIN'],
    ['ADMIN', 'MEMBER'],
    ['ADMIN', 'VIEWER'],
    ['OWNER', 'OWNER'],
  ] as const)('lets an %s hand out %s', async (caller, role) => {
    const token = caller === 'OWNER' ? tenant.ownerToken : await api.tokenWithRole(tenant.ownerToken, caller);
    const { createApiToken } = dataOf(await api.gql(CREATE, { input: { name: 'x', role } }, token));
    expect(createApiToken.apiToken.role).toBe(role);
  });

  it('refuses a role above the caller with FORBIDDEN, and stores nothing', async () => {
    const admin = await api.tokenWithRole(tenant.ownerToken, 'ADMIN');
    const before = await api.prisma.apiToken.count({ where: { tenantId: tenant.tenantId } });
    const response = await api.gql(CREATE, { input: { name: 'escalate', role: 'OWNER' } }, admin);
    expectError(response, 'FORBIDDEN', 'ROLE_ABOVE_CALLER');
    expect(response.body.data).toBeNull();
    expect(await api.prisma.apiToken.count({ where: { tenantId: tenant.tenantId } })).toBe(before);
  });

  it.each([
    ['an empty name', { name: '   ', role: 'VIEWER' }],
    ['a name over 100 characters', { name: 'n'.repeat(101), role: 'VIEWER' }],
    ['an expiresAt in the past', { name: 'old', role: 'VIEWER', expiresAt: '2001-01-01T00:00:00.000Z' }],
  ])('refuses %s with BAD_USER_INPUT', async (_label, input) => {
    const before = await api.prisma.apiToken.count({ where: { tenantId: tenant.tenantId } });
    const response = await api.gql(CREATE, { input }, tenant.ownerToken);
    expectError(response, 'BAD_USER_INPUT', 'INVALID_API_TOKEN_INPUT');
    expect(await api.prisma.apiToken.count({ where: { tenantId: tenant.tenantId } })).toBe(before);
  });

  it('refuses an unknown role written in the query with BAD_USER_INPUT', async () => {
    const response = await api.gql(
      'mutation { createApiToken(input: { name: "x", role: ROOT }) { token } }',
      undefined,
      tenant.ownerToken,
    );
    expect(response.status).toBe(400);
    expectError(response, 'BAD_USER_INPUT', 'INVALID_QUERY');
  });

  it('refuses an unknown role given as a variable with BAD_USER_INPUT, not INTERNAL', async () => {
    const response = await api.gql(CREATE, { input: { name: 'x', role: 'ROOT' } }, tenant.ownerToken);
    expectError(response, 'BAD_USER_INPUT');
  });

  it('refuses an unparseable expiresAt with BAD_USER_INPUT, not INTERNAL', async () => {
    const before = await api.prisma.apiToken.count({ where: { tenantId: tenant.tenantId } });
    const response = await api.gql(
      CREATE,
      { input: { name: 'x', role: 'VIEWER', expiresAt: 'next tuesday' } },
      tenant.ownerToken,
    );
    expect(await api.prisma.apiToken.count({ where: { tenantId: tenant.tenantId } })).toBe(before);
    expectError(response, 'BAD_USER_INPUT');
  });
});

describe('apiTokens', () => {
  it('pages with first/after: every token once, in creation order, with pageInfo and totalCount', async () => {
    const tenant = await api.createTenant();
    for (let i = 0; i < 6; i++) {
      dataOf(await api.gql(CREATE, { input: { name: `t${i}`, role: 'VIEWER' } }, tenant.ownerToken));
    }
    const rows = await api.prisma.apiToken.findMany({
      where: { tenantId: tenant.tenantId },
      orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
    });
    expect(rows).toHaveLength(7);

    const pages: { ids: string[]; hasNextPage: boolean }[] = [];
    let after: string | null = null;
    do {
      const { apiTokens }: Data = dataOf(await api.gql(LIST, { first: 3, after }, tenant.ownerToken));
      expect(apiTokens.totalCount).toBe(7);
      expect(apiTokens.pageInfo.endCursor).toBe(apiTokens.edges.at(-1)?.cursor ?? null);
      for (const edge of apiTokens.edges) {
        // Opaque: base64url, never the id or the timestamp in clear.
        expect(edge.cursor).toMatch(/^[A-Za-z0-9_-]+$/);
        expect(edge.cursor).not.toContain(edge.node.id);
        expect(edge.cursor).not.toContain(edge.node.createdAt);
      }
      pages.push({ ids: apiTokens.edges.map((e: Data) => e.node.id), hasNextPage: apiTokens.pageInfo.hasNextPage });
      after = apiTokens.pageInfo.hasNextPage ? apiTokens.pageInfo.endCursor : null;
    } while (after !== null && pages.length < 10);

    expect(pages.map((p) => [p.ids.length, p.hasNextPage])).toEqual([
      [3, true],
      [3, true],
      [1, false],
    ]);
    expect(pages.flatMap((p) => p.ids)).toEqual(rows.map((r) => r.id));
  });

  it('answers an empty page for first: 0, and the default page size without first', async () => {
    const tenant = await api.createTenant();
    const empty = dataOf(await api.gql(LIST, { first: 0 }, tenant.ownerToken)).apiTokens;
    expect(empty).toEqual({ totalCount: 1, pageInfo: { hasNextPage: true, endCursor: null }, edges: [] });
    const all = dataOf(await api.gql(LIST, {}, tenant.ownerToken)).apiTokens;
    expect(all.edges).toHaveLength(1);
    expect(all.pageInfo.hasNextPage).toBe(false);
  });

  it('lists revoked and expired tokens too', async () => {
    const tenant = await api.createTenant();
    const revokedId = await tokenId(await api.tokenWithRole(tenant.ownerToken, 'VIEWER'));
    dataOf(await api.gql(REVOKE, { id: revokedId }, tenant.ownerToken));
    const expiredId = await tokenId(await api.tokenWithRole(tenant.ownerToken, 'VIEWER'));
    const expiredAt = new Date(Date.now() - 60_000);
    await api.prisma.apiToken.update({ where: { id: expiredId }, data: { expiresAt: expiredAt } });

    const { apiTokens } = dataOf(await api.gql(LIST, {}, tenant.ownerToken));
    expect(apiTokens.totalCount).toBe(3);
    const node = (id: string) => apiTokens.edges.find((e: Data) => e.node.id === id)?.node;
    expect(node(revokedId)).toMatchObject({ revokedAt: expect.any(String), expiresAt: null });
    expect(node(expiredId)).toMatchObject({ revokedAt: null, expiresAt: expiredAt.toISOString() });
  });

  it.each([
    ['not base64 JSON', 'not-a-cursor'],
    ['JSON of the wrong shape', Buffer.from('{"a":1}').toString('base64url')],
    ['an unparseable date', Buffer.from(JSON.stringify(['yesterday', randomUUID()])).toString('base64url')],
    ['a numeric id', Buffer.from(JSON.stringify([new Date().toISOString(), 5])).toString('base64url')],
  ])('refuses a cursor that is %s with BAD_USER_INPUT', async (_label, after) => {
    const tenant = await api.createTenant();
    const response = await api.gql(LIST, { after }, tenant.ownerToken);
    expectError(response, 'BAD_USER_INPUT', 'INVALID_CURSOR');
    expect(response.body.data).toBeNull();
  });

  it.each([
    ['an id that is not a UUID', [new Date().toISOString(), 'x']],
    ['a date beyond what PostgreSQL stores', ['+275760-09-13T00:00:00.000Z', randomUUID()]],
  ])('refuses a cursor with %s with BAD_USER_INPUT, not INTERNAL', async (_label, keyset) => {
    const tenant = await api.createTenant();
    const after = Buffer.from(JSON.stringify(keyset)).toString('base64url');
    expectError(await api.gql(LIST, { after }, tenant.ownerToken), 'BAD_USER_INPUT', 'INVALID_CURSOR');
  });
});

describe('revokeApiToken', () => {
  it('revokes: the token fails at once with UNAUTHENTICATED; revoking again changes nothing', async () => {
    const tenant = await api.createTenant();
    const member = await api.tokenWithRole(tenant.ownerToken, 'MEMBER');
    const id = await tokenId(member);
    expect(dataOf(await api.gql('{ viewer { role } }', undefined, member)).viewer.role).toBe('MEMBER');

    const first = dataOf(await api.gql(REVOKE, { id }, tenant.ownerToken)).revokeApiToken;
    expect(first).toMatchObject({ id, role: 'MEMBER', revokedAt: expect.any(String) });

    const response = await api.gql('{ viewer { role } }', undefined, member);
    expect(response.status).toBe(401);
    expectError(response, 'UNAUTHENTICATED', 'INVALID_TOKEN');

    const second = dataOf(await api.gql(REVOKE, { id }, tenant.ownerToken)).revokeApiToken;
    expect(second).toEqual(first);
    const row = await api.prisma.apiToken.findUniqueOrThrow({ where: { id } });
    expect(row.revokedAt?.toISOString()).toBe(first.revokedAt);
  });

  it('lets a token revoke itself', async () => {
    const tenant = await api.createTenant();
    const admin = await api.tokenWithRole(tenant.ownerToken, 'ADMIN');
    dataOf(await api.gql(REVOKE, { id: await tokenId(admin) }, admin));
    expectError(await api.gql('{ viewer { role } }', undefined, admin), 'UNAUTHENTICATED', 'INVALID_TOKEN');
  });

  it('refuses an ADMIN revoking an OWNER token with FORBIDDEN, and leaves it working', async () => {
    const tenant = await api.createTenant();
    const admin = await api.tokenWithRole(tenant.ownerToken, 'ADMIN');
    const ownerId = await tokenId(tenant.ownerToken);
    const response = await api.gql(REVOKE, { id: ownerId }, admin);
    expectError(response, 'FORBIDDEN', 'ROLE_ABOVE_CALLER');
    expect(response.body.data).toBeNull();
    expect((await api.prisma.apiToken.findUniqueOrThrow({ where: { id: ownerId } })).revokedAt).toBeNull();
    expect(dataOf(await api.gql('{ viewer { role } }', undefined, tenant.ownerToken)).viewer.role).toBe('OWNER');
  });

  it('lets an ADMIN revoke an ADMIN token', async () => {
    const tenant = await api.createTenant();
    const admin = await api.tokenWithRole(tenant.ownerToken, 'ADMIN');
    const other = await api.tokenWithRole(tenant.ownerToken, 'ADMIN');
    expect(dataOf(await api.gql(REVOKE, { id: await tokenId(other) }, admin)).revokeApiToken.revokedAt).toEqual(
      expect.any(String),
    );
  });

  it('answers NOT_FOUND for an unknown id and BAD_USER_INPUT for a malformed one', async () => {
    const tenant = await api.createTenant();
    expectError(await api.gql(REVOKE, { id: randomUUID() }, tenant.ownerToken), 'NOT_FOUND', 'API_TOKEN_NOT_FOUND');
    expectError(await api.gql(REVOKE, { id: '42' }, tenant.ownerToken), 'BAD_USER_INPUT', 'INVALID_ID');
  });
});
