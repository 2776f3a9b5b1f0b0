import { z } from 'zod';
import { parseEnv } from '@caas/config';
import { hashToken, looksLikeToken } from '@caas/security';

const bool = z
  .enum(['true', 'false', '1', '0'])
  .default('false')
  .transform((v) => v === 'true' || v === '1');
const int = (min: number, max: number, fallback: number) => z.coerce.number().int().min(min).max(max).default(fallback);

/** Every variable the API reads. Secrets are marked; none is ever logged. */
const schema = z.object({
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgresql:// URL'),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must be a redis:// URL'),
  HOST: z.string().default('127.0.0.1'),
  PORT: int(1, 65535, 4000),
  /** Secret. The operator's bearer token (`caas_` + 43 base64url characters); kept only as a SHA-256 hash. */
  OPERATOR_TOKEN: z
    .string()
    .refine((t) => looksLikeToken(t, 'caas'), 'must be caas_ followed by 43 base64url characters'),
  /** Secret. 32 bytes, base64: seals write-only secrets (registry credentials, secret env values) at rest. */
  SECRETS_KEY: z.string().refine((k) => Buffer.from(k, 'base64').length === 32, 'must be 32 bytes, base64-encoded'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  GRAPHQL_INTROSPECTION: bool,
  GRAPHQL_PLAYGROUND: bool,
  GRAPHQL_MAX_DEPTH: int(2, 50, 10),
  GRAPHQL_MAX_ALIASES: int(0, 1000, 30),
  GRAPHQL_MAX_COST: int(10, 1_000_000, 10_000),
  GRAPHQL_MAX_ROOT_FIELDS: int(1, 100, 20),
  GRAPHQL_MAX_PAGE_SIZE: int(1, 1000, 100),
  RATE_LIMIT_REQUESTS: int(1, 10_000_000, 600),
  RATE_LIMIT_WINDOW_MS: int(100, 3_600_000, 60_000),
  DB_POOL_SIZE: int(1, 200, 10),
  /** Pool the per-tenant subnets are carved from, and their prefix length. */
  TENANT_SUBNET_POOL: z
    .string()
    .regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'must be an IPv4 CIDR')
    .default('10.128.0.0/9'),
  TENANT_SUBNET_PREFIX: int(16, 28, 20),
  /** BullMQ key prefix, the base of every node's keys (`<prefix>:node:<id>:…`): the scheduler's `QUEUE_PREFIX`. */
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be 1-64 of A-Z a-z 0-9 _ . : -')
    .default('bull'),
  /** Told to joining nodes: how often they heartbeat, and how long after a missed one their lease runs out. */
  NODE_HEARTBEAT_INTERVAL_MS: int(100, 600_000, 2000),
  NODE_LEASE_GRACE_MS: int(500, 3_600_000, 10_000),
  /** `POST /v1/nodes/join` attempts allowed per client address and window (`RATE_LIMIT_WINDOW_MS`). */
  NODE_JOIN_RATE_LIMIT: int(1, 1_000_000, 30),
});

export type ApiEnv = z.infer<typeof schema>;

export interface ApiConfig extends Omit<ApiEnv, 'OPERATOR_TOKEN' | 'SECRETS_KEY'> {
  operatorTokenHash: Uint8Array;
  secretsKey: Buffer;
}

export function loadApiConfig(env: Record<string, string | undefined> = process.env): ApiConfig {
  const { OPERATOR_TOKEN, SECRETS_KEY, ...rest } = parseEnv('api', schema, env);
  return {
    ...rest,
    operatorTokenHash: hashToken(OPERATOR_TOKEN),
    secretsKey: Buffer.from(SECRETS_KEY, 'base64'),
  };
}

export const API_CONFIG = Symbol('API_CONFIG');
