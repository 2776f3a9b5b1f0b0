import { randomBytes } from 'node:crypto';
import type { TestDatabase } from '@caas/testing';
import { createTestDatabase, testRedisUrl } from '@caas/testing';
import { issueToken } from '@caas/security';
import type { AppProcess } from '@caas/cluster-harness';
import { freePort, startApp, waitFor } from '@caas/cluster-harness';

jest.setTimeout(60_000);

// The shape of any GraphQL answer; tests read into it by path.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type GqlBody = { data: any; errors?: { message: string; extensions: { code: string; reason?: string } }[] };

describe('the API as a production process', () => {
  let db: TestDatabase;
  let api: AppProcess;
  let base: string;
  const operatorToken = issueToken().token;

  const gql = async (token: string, query: string, variables?: object) => {
    const response = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    return { status: response.status, body: (await response.json()) as GqlBody };
  };

  beforeAll(async () => {
    db = await createTestDatabase({ label: 'e2e' });
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    api = startApp('api', {
      DATABASE_URL: db.url,
      REDIS_URL: testRedisUrl(),
      PORT: String(port),
      OPERATOR_TOKEN: operatorToken,
      SECRETS_KEY: randomBytes(32).toString('base64'),
      LOG_LEVEL: 'info',
    });
    await waitFor(async () => (await fetch(`${base}/readyz`)).ok, 30_000, 'the API to be ready');
  });

  afterAll(async () => {
    if (api && api.child.exitCode === null) {
      api.child.kill('SIGKILL');
      await api.exited;
    }
    await db?.drop();
  });

  it('serves the operator → tenant → token flow end to end', async () => {
    const slug = `e2e-${randomBytes(4).toString('hex')}`;
    const created = await gql(
      operatorToken,
      'mutation($slug: String!) { createTenant(input: { slug: $slug, displayName: "E2E", ownerEmail: "o@e2e.example" }) { ownerToken tenant { slug status subnet } } }',
      { slug },
    );
    expect(created.body.errors).toBeUndefined();
    const { ownerToken, tenant } = created.body.data.createTenant;
    expect(tenant).toMatchObject({ slug, status: 'ACTIVE' });
    expect(tenant.subnet).toMatch(/^10\.\d+\.\d+\.0\/20$/);

    const viewer = await gql(ownerToken, '{ viewer { kind role tenant { slug } } }');
    expect(viewer.body).toEqual({ data: { viewer: { kind: 'TENANT', role: 'OWNER', tenant: { slug } } } });

    const minted = await gql(ownerToken, 'mutation { createApiToken(input: { name: "ro", role: VIEWER }) { token } }');
    const viewerToken = minted.body.data.createApiToken.token as string;
    const refused = await gql(viewerToken, 'mutation { createApiToken(input: { name: "x", role: VIEWER }) { token } }');
    expect(refused.body.errors?.[0].extensions).toEqual({ code: 'FORBIDDEN', reason: 'ROLE_TOO_LOW' });

    const asOperator = await gql(ownerToken, '{ tenants { totalCount } }');
    expect(asOperator.body.errors?.[0].extensions.code).toBe('FORBIDDEN');
  });

  it('never writes tokens or secrets to its log', () => {
    expect(api.output()).not.toContain(operatorToken);
    expect(api.output()).toContain('GraphQL API on');
  });

  it('stops cleanly on SIGTERM', async () => {
    api.child.kill('SIGTERM');
    await expect(api.exited).resolves.toBe(0);
    expect(api.output()).toContain('API stopped');
  });
});

describe('refusing to start on bad configuration', () => {
  it('names each bad variable, exits with EX_CONFIG and never echoes the value', async () => {
    const badToken = 'caas_this-is-not-long-enough';
    const app = startApp('api', {
      DATABASE_URL: 'mysql://nope',
      REDIS_URL: testRedisUrl(),
      OPERATOR_TOKEN: badToken,
      SECRETS_KEY: 'c2hvcnQ=',
      PORT: '99999',
    });
    await expect(app.exited).resolves.toBe(78);
    for (const name of ['DATABASE_URL', 'OPERATOR_TOKEN', 'SECRETS_KEY', 'PORT']) expect(app.output()).toContain(name);
    expect(app.output()).not.toContain(badToken);
    expect(app.output()).not.toContain('c2hvcnQ=');
  });

  it('applies to the scheduler and the agent too', async () => {
    const scheduler = startApp('scheduler', { REDIS_URL: 'http://wrong' });
    await expect(scheduler.exited).resolves.toBe(78);
    expect(scheduler.output()).toMatch(/DATABASE_URL[\s\S]*REDIS_URL/);
    const agent = startApp('agent', {});
    await expect(agent.exited).resolves.toBe(78);
    expect(agent.output()).toContain('API_URL');
  });
});
