import { createHash, randomUUID } from 'node:crypto';
import { GraphQLSchemaHost } from '@nestjs/graphql';
import { hashToken, issueToken } from '@caas/security';
import { ROLE_MATRIX } from './support/matrix';
import type { Caller, MatrixContext } from './support/role-matrix';
import { CALLERS, expectedOutcome, runEntry } from './support/role-matrix';
import type { CreatedTenant, TestApi } from './support/test-api';
import {
  dataOf,
  dumpDatabase,
  eventually,
  expectError,
  firstError,
  ROLES,
  startTestApi,
  uniqueSlug,
} from './support/test-api';

let api: TestApi;

beforeAll(async () => {
  api = await startTestApi();
});

afterAll(async () => {
  await api?.close();
});

const tokenRow = (token: string) => api.prisma.apiToken.findUniqueOrThrow({ where: { tokenHash: hashToken(token) } });

describe('viewer', () => {
  it('tells a tenant token its kind, role and tenant', async () => {
    const tenant = await api.createTenant();
    const member = await api.tokenWithRole(tenant.ownerToken, 'MEMBER');
    const data = dataOf(await api.gql('{ viewer { kind role tenant { id slug status } } }', undefined, member));
    expect(data).toEqual({
      viewer: { kind: 'TENANT', role: 'MEMBER', tenant: { id: tenant.tenantId, slug: tenant.slug, status: 'ACTIVE' } },
    });
  });

  it('tells the operator it is the operator, with no role and no tenant', async () => {
    const data = dataOf(await api.gql('{ viewer { kind role tenant { id } } }', undefined, api.operatorToken));
    expect(data).toEqual({ viewer: { kind: 'OPERATOR', role: null, tenant: null } });
  });
});

describe('authentication', () => {
  it('refuses a request without Authorization: UNAUTHENTICATED, nothing resolved', async () => {
    const response = await api.gql('{ viewer { kind } }');
    expectError(response, 'UNAUTHENTICATED', 'NOT_AUTHENTICATED');
    expect(response.body.data).toBeNull();
  });

  it('refuses malformed credentials with 401 and WWW-Authenticate: Bearer', async () => {
    const { token } = issueToken();
    const headers = [
      'Bearer',
      'Bearer ',
      'Bearer abc',
      `Basic ${Buffer.from('user:pass').toString('base64')}`,
      `Bearer ${token}x`,
      `Bearer ${token.slice(0, -1)}`,
      `Bearer ${token} extra`,
      `Bearer ${issueToken('caasjoin').token}`,
      `Bearer caas_${'!'.repeat(43)}`,
    ];
    for (const header of headers) {
      const response = await api.http
        .post('/graphql')
        .set('authorization', header)
        .send({ query: '{ viewer { kind } }' });
      expect({ header, status: response.status, code: response.body.errors?.[0]?.extensions?.code }).toEqual({
        header,
        status: 401,
        code: 'UNAUTHENTICATED',
      });
      expect(response.body.errors[0].extensions.reason).toBe('INVALID_TOKEN');
      expect(response.headers['www-authenticate']).toBe('Bearer');
    }
  });

  it('refuses a well-formed token nobody issued', async () => {
    const response = await api.gql('{ viewer { kind } }', undefined, issueToken().token);
    expect(response.status).toBe(401);
    expectError(response, 'UNAUTHENTICATED', 'INVALID_TOKEN');
    expect(response.body.data).toBeNull();
  });

  it('refuses a revoked token', async () => {
    const tenant = await api.createTenant();
    const viewer = await api.tokenWithRole(tenant.ownerToken, 'VIEWER');
    expect(dataOf(await api.gql('{ viewer { role } }', undefined, viewer))).toEqual({ viewer: { role: 'VIEWER' } });

    const { id } = await tokenRow(viewer);
    dataOf(await api.gql(`mutation { revokeApiToken(id: "${id}") { id } }`, undefined, tenant.ownerToken));

    const response = await api.gql('{ viewer { role } }', undefined, viewer);
    expect(response.status).toBe(401);
    expectError(response, 'UNAUTHENTICATED', 'INVALID_TOKEN');
  });

  it('accepts a token until its expiresAt, then refuses it', async () => {
    const tenant = await api.createTenant();
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const created = dataOf(
      await api.gql(
        `mutation ($input: CreateApiTokenInput!) { createApiToken(input: $input) { token apiToken { id expiresAt } } }`,
        { input: { name: 'short-lived', role: 'VIEWER', expiresAt } },
        tenant.ownerToken,
      ),
    ).createApiToken;
    expect(created.apiToken.expiresAt).toBe(expiresAt);
    expect(dataOf(await api.gql('{ viewer { role } }', undefined, created.token))).toEqual({
      viewer: { role: 'VIEWER' },
    });

    await api.prisma.apiToken.update({
      where: { id: created.apiToken.id },
      data: { expiresAt: new Date(Date.now() - 1000) },
    });
    const response = await api.gql('{ viewer { role } }', undefined, created.token);
    expect(response.status).toBe(401);
    expectError(response, 'UNAUTHENTICATED', 'INVALID_TOKEN');
  });

  it('expires a token on its own, a moment after expiresAt', async () => {
    const tenant = await api.createTenant();
    const expiresAt = new Date(Date.now() + 2500);
    const created = dataOf(
      await api.gql(
        `mutation ($input: CreateApiTokenInput!) { createApiToken(input: $input) { token } }`,
        { input: { name: 'short-lived', role: 'VIEWER', expiresAt: expiresAt.toISOString() } },
        tenant.ownerToken,
      ),
    ).createApiToken;
    expect(dataOf(await api.gql('{ viewer { role } }', undefined, created.token)).viewer.role).toBe('VIEWER');
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt.getTime() - Date.now()) + 100));
    expectError(await api.gql('{ viewer { role } }', undefined, created.token), 'UNAUTHENTICATED', 'INVALID_TOKEN');
  });

  it('keeps tenant tokens out of operator operations, whatever their role', async () => {
    const tenant = await api.createTenant();
    const before = await api.prisma.tenant.count();
    const slug = uniqueSlug();
    const response = await api.gql(
      `mutation { createTenant(input: { slug: "${slug}", displayName: "x", ownerEmail: "a@b.example" }) { ownerToken } }`,
      undefined,
      tenant.ownerToken,
    );
    expectError(response, 'FORBIDDEN', 'OPERATOR_ONLY');
    expect(response.body.data).toBeNull();
    expect(await api.prisma.tenant.count()).toBe(before);
    expect(await api.prisma.tenant.findUnique({ where: { slug } })).toBeNull();

    expectError(
      await api.gql('{ tenants { totalCount } }', undefined, tenant.ownerToken),
      'FORBIDDEN',
      'OPERATOR_ONLY',
    );
  });

  it('keeps the operator out of tenant operations (it has no tenant)', async () => {
    expectError(await api.gql('{ tenant { id } }', undefined, api.operatorToken), 'FORBIDDEN', 'TENANT_ONLY');
  });

  it('answers the same refusal on every use of a query (the compiled path as the first)', async () => {
    const tenant = await api.createTenant();
    const viewer = await api.tokenWithRole(tenant.ownerToken, 'VIEWER');
    for (let i = 0; i < 4; i++) {
      expectError(await api.gql('{ apiTokens { totalCount } }', undefined, viewer), 'FORBIDDEN', 'ROLE_TOO_LOW');
    }
  });
});

describe('tokens at rest', () => {
  it('keeps no token in a usable form: only the SHA-256 and a short display prefix', async () => {
    const tenant = await api.createTenant();
    const issued = [tenant.ownerToken];
    for (const role of ROLES) issued.push(await api.tokenWithRole(tenant.ownerToken, role));

    for (const token of issued) {
      const row = await tokenRow(token);
      expect(Buffer.from(row.tokenHash)).toEqual(createHash('sha256').update(token, 'utf8').digest());
      expect(row.prefix).toBe(token.slice(0, 'caas_'.length + 6));
    }

    // Every row of every table, as text: neither a token, nor its secret part, nor its bytes in hex.
    const { tables, dump } = await dumpDatabase(api);
    expect(tables).toContain('api_tokens');
    expect(dump).toContain(tenant.tenantId);
    for (const token of [...issued, api.operatorToken]) {
      const secret = token.slice('caas_'.length);
      expect(dump).not.toContain(secret);
      expect(dump).not.toContain(secret.slice(6, 30));
      expect(dump).not.toContain(Buffer.from(token).toString('hex'));
      expect(dump).not.toContain(Buffer.from(token).toString('base64'));
    }
  });

  it('writes lastUsedAt at most once a minute, in the background', async () => {
    const tenant = await api.createTenant();
    const token = await api.tokenWithRole(tenant.ownerToken, 'VIEWER');
    expect((await tokenRow(token)).lastUsedAt).toBeNull();

    dataOf(await api.gql('{ viewer { role } }', undefined, token));
    const first = await eventually(async () => (await tokenRow(token)).lastUsedAt ?? undefined);
    expect(Math.abs(first.getTime() - Date.now())).toBeLessThan(10_000);

    for (let i = 0; i < 5; i++) dataOf(await api.gql('{ viewer { role } }', undefined, token));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await tokenRow(token)).lastUsedAt).toEqual(first);

    // Once the last write is a minute old, the next request writes again.
    const staleAt = new Date(Date.now() - 61_000);
    await api.prisma.apiToken.update({ where: { tokenHash: hashToken(token) }, data: { lastUsedAt: staleAt } });
    dataOf(await api.gql('{ viewer { role } }', undefined, token));
    const second = await eventually(async () => {
      const lastUsedAt = (await tokenRow(token)).lastUsedAt;
      return lastUsedAt !== null && lastUsedAt.getTime() !== staleAt.getTime() ? lastUsedAt : undefined;
    });
    expect(second.getTime()).toBeGreaterThan(first.getTime());
  });
});

describe('cross-tenant isolation', () => {
  let a: CreatedTenant;
  let b: CreatedTenant;
  let aTokenId: string;
  let aViewerToken: string;
  let aCredentialId: string;

  beforeAll(async () => {
    a = await api.createTenant();
    b = await api.createTenant();
    aViewerToken = await api.tokenWithRole(a.ownerToken, 'VIEWER');
    aTokenId = (await tokenRow(aViewerToken)).id;
    aCredentialId = dataOf(
      await api.gql(
        `mutation { createRegistryCredential(input: { registry: "registry.a.example", username: "a", secret: "a-secret" }) { id } }`,
        undefined,
        a.ownerToken,
      ),
    ).createRegistryCredential.id;
  });

  it("never lists another tenant's tokens", async () => {
    const list = dataOf(
      await api.gql('{ apiTokens(first: 100) { totalCount edges { node { id name } } } }', undefined, b.ownerToken),
    ).apiTokens;
    const bRows = await api.prisma.apiToken.findMany({ where: { tenantId: b.tenantId } });
    expect(list.totalCount).toBe(bRows.length);
    expect(list.edges.map((e: { node: { id: string } }) => e.node.id).sort()).toEqual(bRows.map((r) => r.id).sort());
    expect(JSON.stringify(list)).not.toContain(aTokenId);
  });

  it("answers NOT_FOUND (never FORBIDDEN) for revoking another tenant's token, and leaves it working", async () => {
    const response = await api.gql(`mutation { revokeApiToken(id: "${aTokenId}") { id } }`, undefined, b.ownerToken);
    expectError(response, 'NOT_FOUND', 'API_TOKEN_NOT_FOUND');
    expect(response.body.data).toBeNull();
    expect((await tokenRow(aViewerToken)).revokedAt).toBeNull();
    expect(dataOf(await api.gql('{ viewer { role } }', undefined, aViewerToken)).viewer.role).toBe('VIEWER');
  });

  it('answers the same NOT_FOUND for an id that does not exist at all (no existence oracle)', async () => {
    const foreign = await api.gql(`mutation { revokeApiToken(id: "${aTokenId}") { id } }`, undefined, b.ownerToken);
    const missing = await api.gql(`mutation { revokeApiToken(id: "${randomUUID()}") { id } }`, undefined, b.ownerToken);
    expect(foreign.body.errors?.[0]?.message).toBe(missing.body.errors?.[0]?.message);
    expect(firstError(foreign)).toEqual(firstError(missing));
  });

  it("never lists another tenant's registry credentials", async () => {
    const list = dataOf(
      await api.gql('{ registryCredentials { totalCount edges { node { id registry } } } }', undefined, b.ownerToken),
    ).registryCredentials;
    expect(list).toEqual({ totalCount: 0, edges: [] });
  });

  it("answers NOT_FOUND for deleting another tenant's registry credential, and keeps it", async () => {
    const response = await api.gql(
      `mutation { deleteRegistryCredential(id: "${aCredentialId}") { id } }`,
      undefined,
      b.ownerToken,
    );
    expectError(response, 'NOT_FOUND', 'REGISTRY_CREDENTIAL_NOT_FOUND');
    expect(await api.prisma.registryCredential.findUnique({ where: { id: aCredentialId } })).not.toBeNull();
    const aList = dataOf(await api.gql('{ registryCredentials { edges { node { id } } } }', undefined, a.ownerToken));
    expect(aList.registryCredentials.edges).toEqual([{ node: { id: aCredentialId } }]);
  });

  it("lets B hold credentials for the registry A uses, without touching A's", async () => {
    const created = dataOf(
      await api.gql(
        `mutation { createRegistryCredential(input: { registry: "registry.a.example", username: "b", secret: "b-secret" }) { id registry username } }`,
        undefined,
        b.ownerToken,
      ),
    ).createRegistryCredential;
    expect(created).toMatchObject({ registry: 'registry.a.example', username: 'b' });
    expect(created.id).not.toBe(aCredentialId);
    const aRow = await api.prisma.registryCredential.findUniqueOrThrow({ where: { id: aCredentialId } });
    expect(aRow.username).toBe('a');
  });

  it('shows each tenant its own tenant and quota', async () => {
    const seenByB = dataOf(await api.gql('{ tenant { id slug } viewer { tenant { id } } }', undefined, b.ownerToken));
    expect(seenByB).toEqual({ tenant: { id: b.tenantId, slug: b.slug }, viewer: { tenant: { id: b.tenantId } } });
  });
});

describe('role matrix: who may call each root operation', () => {
  let context: MatrixContext;
  const tokens = {} as Record<Caller, string>;

  beforeAll(async () => {
    context = { api, home: await api.createTenant(), target: await api.createTenant() };
    for (const role of ROLES) tokens[role] = await api.tokenWithRole(context.home.ownerToken, role);
    tokens.OPERATOR = api.operatorToken;
  });

  it('covers every root operation of the running schema', () => {
    const schema = api.app.get(GraphQLSchemaHost).schema;
    const operations = [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()].flatMap(
      (type) => (type ? Object.keys(type.getFields()).map((field) => `${type.name}.${field}`) : []),
    );
    expect(Object.keys(ROLE_MATRIX).sort()).toEqual(operations.sort());
  });

  it.each(Object.keys(ROLE_MATRIX))('%s', async (operation) => {
    const entry = ROLE_MATRIX[operation];
    const expected: Record<string, string> = {};
    const actual: Record<string, string> = {};
    for (const caller of CALLERS) {
      expected[caller] = expectedOutcome(entry, caller);
      actual[caller] = await runEntry(operation, entry, context, tokens[caller]);
    }
    expect(actual).toEqual(expected);
  });
});
