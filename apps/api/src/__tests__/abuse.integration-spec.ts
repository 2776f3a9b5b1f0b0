import Redis from 'ioredis';
import { hashToken } from '@caas/security';
import { testRedisUrl } from '@caas/testing';
import { ApiTokenService } from '../api-token/api-token.service';
import type { CreatedTenant, GqlResponse, TestApi } from './support/test-api';
import { dataOf, expectError, expectNoLeak, startTestApi } from './support/test-api';

let api: TestApi;
let tenant: CreatedTenant;

beforeAll(async () => {
  api = await startTestApi();
  tenant = await api.createTenant();
});

afterAll(async () => {
  await api?.close();
});

const CREATE_TOKEN = 'createApiToken(input: { name: "abuse", role: VIEWER })';
const tokenCount = () => api.prisma.apiToken.count({ where: { tenantId: tenant.tenantId } });

/** Runs `send`, and asserts it was refused before execution: 400, no data, and no api_tokens row written. */
async function refusedBeforeExecution(send: () => Promise<GqlResponse>): Promise<GqlResponse> {
  const before = await tokenCount();
  const response = await send();
  expect(response.status).toBe(400);
  expect(response.body.data).toBeNull();
  expect(await tokenCount()).toBe(before);
  return response;
}

describe('query limits, enforced before any resolver runs', () => {
  it('refuses a query 20 levels deep', async () => {
    const selection = Array.from({ length: 18 }, () => 'a {').join(' ') + ' b' + ' }'.repeat(18);
    const response = await refusedBeforeExecution(() =>
      api.gql(`mutation { ${CREATE_TOKEN} { apiToken { ${selection} } } }`, undefined, tenant.ownerToken),
    );
    expectError(response, 'BAD_USER_INPUT', 'QUERY_TOO_DEEP');
    expect(response.body.errors?.every((e) => e.extensions.code === 'BAD_USER_INPUT')).toBe(true);
  });

  it('refuses 1,000 aliases with exactly one error', async () => {
    const aliases = Array.from({ length: 1000 }, (_, i) => `a${i}: token`).join(' ');
    const response = await refusedBeforeExecution(() =>
      api.gql(`mutation { ${CREATE_TOKEN} { ${aliases} } }`, undefined, tenant.ownerToken),
    );
    expect(response.body.errors).toHaveLength(1);
    expectError(response, 'BAD_USER_INPUT', 'TOO_MANY_ALIASES');
  });

  it('refuses a query whose pages multiply past the cost limit', async () => {
    const page =
      'apiTokens(first: 100) { edges { node { id name prefix role expiresAt revokedAt lastUsedAt createdAt } } }';
    const query = `{ ${Array.from({ length: 11 }, (_, i) => `p${i}: ${page}`).join(' ')} }`;
    const response = await refusedBeforeExecution(() => api.gql(query, undefined, tenant.ownerToken));
    expectError(response, 'BAD_USER_INPUT', 'QUERY_TOO_COSTLY');
  });

  it('refuses an array batch of 100 operations without running any', async () => {
    const batch = Array.from({ length: 100 }, () => ({ query: `mutation { ${CREATE_TOKEN} { token } }` }));
    const response = await refusedBeforeExecution(() => api.post(batch, tenant.ownerToken));
    expectError(response, 'BAD_USER_INPUT', 'BATCH_TOO_LARGE');
  });

  it('refuses even a batch of two', async () => {
    const batch = [{ query: '{ viewer { kind } }' }, { query: `mutation { ${CREATE_TOKEN} { token } }` }];
    const response = await refusedBeforeExecution(() => api.post(batch, tenant.ownerToken));
    expectError(response, 'BAD_USER_INPUT', 'BATCH_TOO_LARGE');
  });

  it('refuses first: 100000000 anywhere in the document, before the mutation beside it runs', async () => {
    const response = await refusedBeforeExecution(() =>
      api.gql(
        `mutation M { ${CREATE_TOKEN} { token } } query Q { apiTokens(first: 100000000) { totalCount } }`,
        undefined,
        tenant.ownerToken,
        'M',
      ),
    );
    expectError(response, 'BAD_USER_INPUT', 'PAGE_SIZE_TOO_LARGE');
  });

  it('refuses first: $n with a huge variable, without calling the resolver', async () => {
    const list = jest.spyOn(api.app.get(ApiTokenService), 'list');
    try {
      const query = 'query ($n: Int) { apiTokens(first: $n) { totalCount } }';
      for (const n of [100_000_000, 101, -1]) {
        const response = await refusedBeforeExecution(() => api.gql(query, { n }, tenant.ownerToken));
        expectError(response, 'BAD_USER_INPUT', 'PAGE_SIZE_TOO_LARGE');
      }
      expect(list).not.toHaveBeenCalled();
      // The same query with an acceptable page runs (and the spy sees it).
      expect(dataOf(await api.gql(query, { n: 100 }, tenant.ownerToken)).apiTokens.totalCount).toBe(await tokenCount());
      expect(list).toHaveBeenCalledTimes(1);
    } finally {
      list.mockRestore();
    }
  });

  it('refuses a variable its type cannot hold with BAD_USER_INPUT, not INTERNAL', async () => {
    const query = 'query ($n: Int) { apiTokens(first: $n) { totalCount } }';
    expectError(await api.gql(query, { n: 1e12 }, tenant.ownerToken), 'BAD_USER_INPUT');
    expectError(await api.gql(query, { n: 'ten' }, tenant.ownerToken), 'BAD_USER_INPUT');
  });

  it('refuses introspection by default, before the mutation beside it runs', async () => {
    const response = await refusedBeforeExecution(() =>
      api.gql(
        `mutation M { ${CREATE_TOKEN} { token } } query Q { __schema { queryType { name } } }`,
        undefined,
        tenant.ownerToken,
        'M',
      ),
    );
    expectError(response, 'FORBIDDEN', 'INTROSPECTION_DISABLED');
    expect(response.body.errors).toHaveLength(1);
  });

  it('refuses __type, and __schema hidden in a fragment', async () => {
    for (const query of [
      '{ __type(name: "Tenant") { name } }',
      'query { ...S } fragment S on Query { __schema { types { name } } }',
      'query { viewer { kind } ... on Query { __schema { queryType { name } } } }',
    ]) {
      expectError(await api.gql(query, undefined, tenant.ownerToken), 'FORBIDDEN', 'INTROSPECTION_DISABLED');
    }
  });

  it('still answers __typename', async () => {
    expect(dataOf(await api.gql('{ __typename viewer { __typename } }', undefined, tenant.ownerToken))).toEqual({
      __typename: 'Query',
      viewer: { __typename: 'Viewer' },
    });
  });
});

describe('introspection enabled by configuration', () => {
  let open: TestApi;
  beforeAll(async () => {
    open = await startTestApi({ DATABASE_URL: api.databaseUrl, GRAPHQL_INTROSPECTION: 'true' });
  });
  afterAll(async () => {
    await open?.close();
  });

  it('answers __schema and __type, which show no field for a token or a secret', async () => {
    const data = dataOf(
      await open.gql(
        `{ __schema { queryType { name } mutationType { name } }
           token: __type(name: "ApiToken") { fields { name } }
           credential: __type(name: "RegistryCredential") { fields { name } } }`,
        undefined,
        tenant.ownerToken,
      ),
    );
    expect(data.__schema).toEqual({ queryType: { name: 'Query' }, mutationType: { name: 'Mutation' } });
    const names = (type: { fields: { name: string }[] }) => type.fields.map((f) => f.name).sort();
    expect(names(data.token)).toEqual(
      ['createdAt', 'expiresAt', 'id', 'lastUsedAt', 'name', 'prefix', 'revokedAt', 'role'].sort(),
    );
    expect(names(data.credential)).toEqual(['createdAt', 'id', 'registry', 'username']);
  });
});

describe('rate limit per token', () => {
  let limited: TestApi;
  const redis = new Redis(testRedisUrl(), { lazyConnect: true });
  const tokenIds: string[] = [];

  beforeAll(async () => {
    limited = await startTestApi({
      DATABASE_URL: api.databaseUrl,
      RATE_LIMIT_REQUESTS: '3',
      RATE_LIMIT_WINDOW_MS: '600000',
    });
  });

  afterAll(async () => {
    await limited?.close();
    if (tokenIds.length > 0) await redis.del(...tokenIds.map((id) => `caas:rl:${id}`));
    await redis.quit();
  });

  it('answers the 4th request in the window with 429 RATE_LIMITED and Retry-After, and serves other tokens', async () => {
    // Fresh tokens, made through the unlimited app: their counters start at zero.
    const busy = await api.tokenWithRole(tenant.ownerToken, 'VIEWER');
    const other = await api.tokenWithRole(tenant.ownerToken, 'VIEWER');
    for (const token of [busy, other]) {
      tokenIds.push((await api.prisma.apiToken.findUniqueOrThrow({ where: { tokenHash: hashToken(token) } })).id);
    }

    for (let i = 0; i < 3; i++) {
      expect(dataOf(await limited.gql('{ viewer { role } }', undefined, busy))).toEqual({ viewer: { role: 'VIEWER' } });
    }
    const refused = await limited.gql('{ viewer { role } }', undefined, busy);
    expect(refused.status).toBe(429);
    expectError(refused, 'RATE_LIMITED', 'RATE_LIMITED');
    expect(refused.body.data).toBeNull();
    const retryAfter = Number(refused.headers['retry-after']);
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(600);

    // Still refused (refusals count too), while another token of the same tenant is served.
    expect((await limited.gql('{ viewer { role } }', undefined, busy)).status).toBe(429);
    expect(dataOf(await limited.gql('{ viewer { role } }', undefined, other))).toEqual({ viewer: { role: 'VIEWER' } });
  });
});

describe('errors never leak', () => {
  it('has a leak check (run on every response of the suite) that catches stacks, Prisma and SQL', () => {
    const leaks = [
      '{"errors":[{"message":"boom","extensions":{"stacktrace":["Error"]}}]}',
      'Error: boom\n    at TenantService.create (/work/main/apps/api/src/tenant/tenant.service.ts:61:19)',
      'at async Promise.all (index 0)\n    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)',
      'Invalid `prisma.apiToken.findUnique()` invocation',
      'PrismaClientKnownRequestError: Unique constraint failed',
      'SELECT "id" FROM "api_tokens" WHERE "tokenHash" = $1',
    ];
    for (const text of leaks) expect(() => expectNoLeak(text)).toThrow(/leaks/);
    for (const text of ['{"data":{"viewer":{"kind":"TENANT"}}}', 'slug must be a lower-case DNS label (at most 63).']) {
      expect(() => expectNoLeak(text)).not.toThrow();
    }
  });

  it('answers a syntax error with BAD_USER_INPUT', async () => {
    const response = await api.gql('{ viewer { kind ', undefined, tenant.ownerToken);
    expect(response.status).toBe(400);
    expectError(response, 'BAD_USER_INPUT', 'INVALID_QUERY');
    expect(response.body.errors?.[0]?.message).toMatch(/^Syntax Error/);
  });

  it('answers an unknown field with BAD_USER_INPUT', async () => {
    const response = await api.gql('{ viewer { password } }', undefined, tenant.ownerToken);
    expect(response.status).toBe(400);
    expectError(response, 'BAD_USER_INPUT', 'INVALID_QUERY');
  });

  it('answers a database failure with INTERNAL and a generic message, nothing more', async () => {
    await api.prisma.$executeRawUnsafe('ALTER TABLE registry_credentials RENAME TO registry_credentials_away');
    try {
      // gql() fails the test if the body mentions a stack, Prisma or SQL.
      const response = await api.gql('{ registryCredentials { totalCount } }', undefined, tenant.ownerToken);
      expect(response.body).toEqual({
        data: null,
        errors: [
          {
            message: 'Internal server error.',
            locations: [{ line: 1, column: 3 }],
            path: ['registryCredentials'],
            extensions: { code: 'INTERNAL' },
          },
        ],
      });
      expect(response.text).not.toMatch(/registry_credentials|relation|does not exist/i);
    } finally {
      await api.prisma.$executeRawUnsafe('ALTER TABLE registry_credentials_away RENAME TO registry_credentials');
    }
    expect(dataOf(await api.gql('{ registryCredentials { totalCount } }', undefined, tenant.ownerToken))).toEqual({
      registryCredentials: { totalCount: 0 },
    });
  });

  describe('malformed requests are the client’s fault', () => {
    it('answers a body that is not JSON with BAD_USER_INPUT, not INTERNAL', async () => {
      const response = await api.post('{"query": "{ viewer { kind } }"', tenant.ownerToken);
      expect(response.status).toBe(400);
      expectError(response, 'BAD_USER_INPUT');
    });

    it('answers a body without a query with BAD_USER_INPUT, not INTERNAL', async () => {
      const response = await api.post({ variables: {} }, tenant.ownerToken);
      expect(response.status).toBe(400);
      expectError(response, 'BAD_USER_INPUT');
    });

    it('answers a mutation sent with GET with BAD_USER_INPUT, not INTERNAL', async () => {
      const before = await tokenCount();
      const query = encodeURIComponent(`mutation { ${CREATE_TOKEN} { token } }`);
      const response = await api.get(`/graphql?query=${query}`, tenant.ownerToken);
      expect(await tokenCount()).toBe(before);
      expectError(response, 'BAD_USER_INPUT');
    });

    it('still refuses those requests without running anything or leaking', async () => {
      const before = await tokenCount();
      const query = encodeURIComponent(`mutation { ${CREATE_TOKEN} { token } }`);
      for (const response of [
        await api.post('{"query": "{ viewer { kind } }"', tenant.ownerToken),
        await api.post({ variables: {} }, tenant.ownerToken),
        await api.post([], tenant.ownerToken),
        await api.get(`/graphql?query=${query}`, tenant.ownerToken),
      ]) {
        expect(response.status).toBeGreaterThanOrEqual(400);
        expect(response.body.data).toBeNull();
        expect(response.body.errors?.[0]?.message).not.toMatch(/FST_|MER_ERR|Unexpected token/);
      }
      expect(await tokenCount()).toBe(before);
    });
  });
});
