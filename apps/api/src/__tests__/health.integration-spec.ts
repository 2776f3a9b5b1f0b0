import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import type { Db } from '@caas/db';
import { testDatabaseAdminUrl } from '@caas/testing';
import { DB } from '../common/infra/tokens';
import type { TestApi } from './support/test-api';
import { dataOf, expectError, startTestApi } from './support/test-api';

let api: TestApi;

beforeAll(async () => {
  api = await startTestApi();
});

afterAll(async () => {
  await api?.close();
});

describe('with Redis unreachable', () => {
  let degraded: TestApi;

  beforeAll(async () => {
    degraded = await startTestApi({ DATABASE_URL: api.databaseUrl, REDIS_URL: 'redis://127.0.0.1:1/0' });
  });

  afterAll(async () => {
    await degraded?.close();
    // ioredis arms a 2-second "destroy the socket" timer when it quits with a socket that never connected,
    // and nothing clears it; wait it out so the test run ends cleanly instead of lingering after the report.
    await new Promise((resolve) => setTimeout(resolve, 2100));
  });

  it('answers /readyz with 503, naming Redis unreachable and PostgreSQL ok', async () => {
    const started = Date.now();
    const response = await degraded.get('/readyz');
    expect(response.status).toBe(503);
    expect(response.body).toEqual({ status: 'not ready', checks: { postgres: 'ok', redis: 'unreachable' } });
    // Bounded by the health check's own timeout (2 s), with slack for a loaded machine.
    expect(Date.now() - started).toBeLessThan(8000);
  });

  it('stays alive: /healthz still answers ok', async () => {
    const response = await degraded.get('/healthz');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ status: 'ok' });
  });

  it('refuses authenticated GraphQL requests (the rate limiter cannot count) as INTERNAL', async () => {
    const response = await degraded.gql('{ viewer { kind } }', undefined, degraded.operatorToken);
    expectError(response, 'INTERNAL');
    expect(response.body.data).toBeNull();
    expect(response.body.errors?.[0]?.message).toBe('Internal server error.');
  });

  it('answers that server-side failure with a 5xx status, not 400', async () => {
    const response = await degraded.gql('{ viewer { kind } }', undefined, degraded.operatorToken);
    expect(response.status).toBeGreaterThanOrEqual(500);
  });
});

describe('healthy', () => {
  it('answers /healthz with {status: ok}', async () => {
    const response = await api.get('/healthz');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ status: 'ok' });
  });

  it('answers /readyz ready, with PostgreSQL and Redis ok', async () => {
    const response = await api.get('/readyz');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ status: 'ready', checks: { postgres: 'ok', redis: 'ok' } });
  });

  it('needs no credentials for either', async () => {
    for (const path of ['/healthz', '/readyz']) {
      const response = await api.http.get(path);
      expect(response.status).toBe(200);
    }
  });
});

describe('shutdown', () => {
  /** Open connections to the test database made under `applicationName`. */
  async function connections(applicationName: string): Promise<number> {
    const client = new Client({ connectionString: testDatabaseAdminUrl() });
    await client.connect();
    try {
      const { rows } = await client.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
        [applicationName],
      );
      return rows[0].n;
    } finally {
      await client.end();
    }
  }

  /** A second app on the same database, whose connections carry their own application_name. */
  async function secondApp(): Promise<{ app: TestApi; applicationName: string }> {
    const applicationName = `caas_test_${randomBytes(4).toString('hex')}`;
    const url = new URL(api.databaseUrl);
    url.searchParams.set('application_name', applicationName);
    return { app: await startTestApi({ DATABASE_URL: url.toString() }), applicationName };
  }

  it('releases every database connection on close, after requests that used Prisma', async () => {
    const { app, applicationName } = await secondApp();
    const tenant = await api.createTenant();
    dataOf(await app.gql('{ tenant { id } }', undefined, tenant.ownerToken));
    expect(await connections(applicationName)).toBeGreaterThan(0);
    await app.app.close();
    expect(await connections(applicationName)).toBe(0);
  });

  it('releases every database connection on close, even when only token verification used the pool', async () => {
    const { app, applicationName } = await secondApp();
    const { pool } = app.app.get<Db>(DB);
    try {
      const tenant = await api.createTenant();
      expect(dataOf(await app.gql('{ viewer { role } }', undefined, tenant.ownerToken))).toEqual({
        viewer: { role: 'OWNER' },
      });
      expect(await connections(applicationName)).toBeGreaterThan(0);
      await app.app.close();
      expect(await connections(applicationName)).toBe(0);
    } finally {
      if (!pool.ended && !pool.ending) await pool.end();
    }
  });

  it('handles errors of idle pool connections from the start', async () => {
    const { app } = await secondApp();
    const { pool } = app.app.get<Db>(DB);
    try {
      expect(pool.listenerCount('error')).toBeGreaterThan(0);
    } finally {
      await app.close();
    }
  });
});
