import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Redis } from 'ioredis';
import supertest from 'supertest';
import type { PrismaClient, Role } from '@caas/db';
import { issueToken } from '@caas/security';
import type { TestDatabase } from '@caas/testing';
import { createTestDatabase, testRedisUrl } from '@caas/testing';
import { createApiApp } from '../../app';
import { PRISMA, REDIS } from '../../common/infra/tokens';
import type { ApiConfig, ApiEnv } from '../../config/api-config';
import { loadApiConfig } from '../../config/api-config';

/** Environment overrides, as the process environment would give them (strings). */
export type TestEnv = Partial<Record<keyof ApiEnv, string>>;

export interface GqlError {
  message: string;
  path?: (string | number)[];
  extensions: { code: string; reason?: string };
}

/** Response data as the tests read it: shapes are asserted on, not declared. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Data = Record<string, any>;

export interface GqlResponse<T = Data> {
  status: number;
  headers: Record<string, string>;
  body: { data: T | null; errors?: GqlError[] };
  /** The raw response text, for leak scans. */
  text: string;
}

export interface CreatedTenant {
  tenantId: string;
  slug: string;
  ownerToken: string;
}

export interface TestApi {
  app: NestFastifyApplication;
  /** supertest bound to the app's HTTP server. */
  http: ReturnType<typeof supertest>;
  config: ApiConfig;
  /** The app's own Prisma client, for reading and writing rows directly. */
  prisma: PrismaClient;
  databaseUrl: string;
  operatorToken: string;
  gql<T = Data>(
    query: string,
    variables?: Record<string, unknown>,
    token?: string,
    operationName?: string,
  ): Promise<GqlResponse<T>>;
  /** POSTs any body to /graphql (a JSON string is sent as is); the response is scanned for leaks like gql's. */
  post(body: unknown, token?: string): Promise<GqlResponse>;
  /** GETs a path; the response is scanned for leaks. */
  get(path: string, token?: string): Promise<GqlResponse>;
  createTenant(slug?: string): Promise<CreatedTenant>;
  tokenWithRole(ownerToken: string, role: Role): Promise<string>;
  close(): Promise<void>;
}

export const ROLES: readonly Role[] = ['VIEWER', 'MEMBER', 'ADMIN', 'OWNER'];

/** A slug no other test (or run) uses. */
export function uniqueSlug(label = 't'): string {
  return `${label}-${randomBytes(5).toString('hex')}`;
}

/** A 32-byte secrets key, base64. */
export function randomSecretsKey(): string {
  return randomBytes(32).toString('base64');
}

// Every test and hook of a file that starts the API gets this much time: booting, closing and dropping a
// database take well under a second, but a loaded machine (two CPUs, parallel workers) can stall for seconds.
jest.setTimeout(30_000);

const STACK_FRAME = /\bat (?:async )?[\w$.<>[\] ]*\(?(?:node:|file:|\/)[^\s)]*:\d+:\d+\)?/;

/**
 * Fails when a response body leaks internals: a stack, a stack frame, Prisma, or SQL. Bearer tokens and
 * cursors are random text and are left out of the scan (a random token may spell anything).
 */
export function expectNoLeak(text: string): void {
  const scanned = text
    .replace(/caas_[A-Za-z0-9_-]{43}/g, '<token>')
    .replace(/"(cursor|endCursor)":"[^"]*"/g, '"$1":"<cursor>"');
  const leaks = [
    /stack/i.test(scanned) && '"stack"',
    /prisma/i.test(scanned) && '"prisma"',
    /SELECT/.test(scanned) && '"SELECT"',
    STACK_FRAME.test(scanned) && 'a stack frame',
  ].filter(Boolean);
  if (leaks.length > 0) {
    throw new Error(`response body leaks ${leaks.join(', ')}:\n${text.slice(0, 2000)}`);
  }
}

/** Test environment: silent logs, a limit no test reaches unless it asks for one. */
function testEnv(databaseUrl: string, operatorToken: string, overrides: TestEnv): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    REDIS_URL: testRedisUrl(),
    OPERATOR_TOKEN: operatorToken,
    SECRETS_KEY: randomSecretsKey(),
    LOG_LEVEL: 'silent',
    RATE_LIMIT_REQUESTS: '1000000',
    DB_POOL_SIZE: '5',
    ...overrides,
  };
}

/**
 * Starts the API on a database of its own (or on `overrides.DATABASE_URL`, which is then left alone on
 * close), with a fresh operator token. Nothing listens on a port: supertest drives the server directly.
 */
export async function startTestApi(overrides: TestEnv = {}): Promise<TestApi> {
  let database: TestDatabase | undefined;
  const databaseUrl = overrides.DATABASE_URL ?? (database = await createTestDatabase({ label: 'api' })).url;
  const operatorToken = issueToken().token;
  const config = loadApiConfig(testEnv(databaseUrl, operatorToken, overrides));

  let app: NestFastifyApplication;
  try {
    app = await createApiApp(config);
    await app.getHttpAdapter().getInstance().ready();
  } catch (error) {
    await database?.drop();
    throw error;
  }
  // Let the Redis client finish connecting (or fail to): closing the app in the middle of ioredis's ready
  // check leaves a 2-second timer behind, and Jest then reports that it "did not exit".
  const redis = app.get<Redis>(REDIS);
  if (redis.status !== 'ready') {
    const settled = new AbortController();
    const timer = setTimeout(() => settled.abort(), 3000);
    await Promise.race([
      once(redis, 'ready', { signal: settled.signal }),
      once(redis, 'error', { signal: settled.signal }),
    ]).catch(() => undefined);
    clearTimeout(timer);
    settled.abort();
  }
  const http = supertest(app.getHttpServer());
  const prisma = app.get<PrismaClient>(PRISMA);

  const toResponse = <T>(response: supertest.Response): GqlResponse<T> => {
    expectNoLeak(response.text);
    return {
      status: response.status,
      headers: response.headers as Record<string, string>,
      body: response.body as GqlResponse<T>['body'],
      text: response.text,
    };
  };

  const post: TestApi['post'] = async (body, token) => {
    const request = http.post('/graphql').set('content-type', 'application/json');
    if (token !== undefined) request.set('authorization', `Bearer ${token}`);
    return toResponse(await request.send(body as object));
  };

  const get: TestApi['get'] = async (path, token) => {
    const request = http.get(path);
    if (token !== undefined) request.set('authorization', `Bearer ${token}`);
    return toResponse(await request);
  };

  const gql: TestApi['gql'] = async <T>(
    query: string,
    variables?: Record<string, unknown>,
    token?: string,
    operationName?: string,
  ) => {
    const request = http.post('/graphql').set('content-type', 'application/json');
    if (token !== undefined) request.set('authorization', `Bearer ${token}`);
    return toResponse<T>(await request.send({ query, variables, operationName }));
  };

  const createTenant = async (slug = uniqueSlug()): Promise<CreatedTenant> => {
    const { body } = await gql<{ createTenant: { tenant: { id: string }; ownerToken: string } }>(
      `mutation ($input: CreateTenantInput!) { createTenant(input: $input) { tenant { id } ownerToken } }`,
      { input: { slug, displayName: `Tenant ${slug}`, ownerEmail: `owner@${slug}.example` } },
      operatorToken,
    );
    if (body.data === null) throw new Error(`createTenant failed: ${JSON.stringify(body.errors)}`);
    return { tenantId: body.data.createTenant.tenant.id, slug, ownerToken: body.data.createTenant.ownerToken };
  };

  const tokenWithRole = async (ownerToken: string, role: Role): Promise<string> => {
    const { body } = await gql<{ createApiToken: { token: string } }>(
      `mutation ($input: CreateApiTokenInput!) { createApiToken(input: $input) { token } }`,
      { input: { name: `${role.toLowerCase()} token`, role } },
      ownerToken,
    );
    if (body.data === null) throw new Error(`createApiToken failed: ${JSON.stringify(body.errors)}`);
    return body.data.createApiToken.token;
  };

  const close = async () => {
    try {
      await app.close();
    } finally {
      await database?.drop();
    }
  };

  return { app, http, config, prisma, databaseUrl, operatorToken, gql, post, get, createTenant, tokenWithRole, close };
}

/** The first error's code and reason (`{}` when there is no error), for one readable assertion. */
export function firstError(response: GqlResponse): { code?: string; reason?: string } {
  const extensions = response.body.errors?.[0]?.extensions;
  return extensions === undefined ? {} : { code: extensions.code, reason: extensions.reason };
}

/** Asserts the first error's code (and reason, when given). */
export function expectError(response: GqlResponse, code: string, reason?: string): void {
  const { code: actualCode, reason: actualReason } = firstError(response);
  expect(reason === undefined ? { code: actualCode } : { code: actualCode, reason: actualReason }).toEqual(
    reason === undefined ? { code } : { code, reason },
  );
}

/** The response's data, after asserting there is no error. */
export function dataOf<T>(response: GqlResponse<T>): T {
  expect(response.body.errors ?? []).toEqual([]);
  expect(response.body.data).not.toBeNull();
  return response.body.data as T;
}

/** Polls until `read` returns something other than `undefined` (background writes land a moment later). */
export async function eventually<T>(read: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Every row of every table of the test's database, as JSON text: to prove a secret is stored nowhere. */
export async function dumpDatabase(api: TestApi): Promise<{ tables: string[]; dump: string }> {
  const tables = await api.prisma.$queryRaw<{ name: string }[]>`
    SELECT table_name::text AS name FROM information_schema.tables
    WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`;
  let dump = '';
  for (const { name } of tables) {
    const rows = await api.prisma.$queryRawUnsafe<{ json: string }[]>(
      `SELECT row_to_json(t)::text AS json FROM "${name.replace(/"/g, '""')}" t`,
    );
    dump += `${rows.map((r) => r.json).join('\n')}\n`;
  }
  return { tables: tables.map((t) => t.name), dump };
}
