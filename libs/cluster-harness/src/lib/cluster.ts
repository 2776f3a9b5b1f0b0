// A control plane for end-to-end tests and benchmarks: the built API and N scheduler processes on one test database and one
// Redis prefix, plus simulated nodes that join through the API and speak the real node contract over their own
// Redis ACL users.
import { randomBytes } from 'node:crypto';
import type { NodeJoinResponse } from '@caas/queue-contracts';
import { NodeConnection, NodeJoinError, joinCluster } from '@caas/node-client';
import type { SimulatedNodeOptions } from '@caas/node-simulator';
import { SimulatedNode } from '@caas/node-simulator';
import { issueToken } from '@caas/security';
import type { TestDatabase } from '@caas/testing';
import { createTestDatabase, flushRedisPrefix, testRedisUrl, uniqueRedisPrefix } from '@caas/testing';
import type { AppProcess } from './processes';
import { exitsWithin, freePort, startApp, waitFor } from './processes';

// The shape of any GraphQL answer; tests read into it by path.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type GqlBody = { data: any; errors?: { message: string; extensions: { code: string } }[] };

export interface Capacity {
  vcpus: number;
  memoryMiB: number;
  pods: number;
}

export interface ClusterOptions {
  schedulers: number;
  /** Extra scheduler environment (timings). */
  schedulerEnv?: Record<string, string>;
  label: string;
  /** NODE_LEASE_GRACE_MS of the API (told to nodes) and the schedulers; default the fast 3 s. */
  leaseGraceMs?: number;
}

/** Short timings so node loss, retries and reconcile happen within a test's patience. */
export const FAST_SCHEDULER_ENV: Record<string, string> = {
  NODE_LEASE_GRACE_MS: '3000',
  NODE_MONITOR_INTERVAL_MS: '200',
  OUTBOX_POLL_INTERVAL_MS: '50',
  PLACEMENT_RETRY_DELAY_MS: '2000',
  RECONCILE_INTERVAL_MS: '1000',
  REPLACE_BACKOFF_BASE_MS: '200',
  REPLACE_BACKOFF_MAX_MS: '2000',
  INGEST_BLOCK_MS: '200',
  INGEST_NODE_REFRESH_MS: '300',
  LOG_LEVEL: 'warn',
};

export class Cluster {
  readonly operatorToken = issueToken().token;
  readonly secretsKey = randomBytes(32).toString('base64');
  readonly prefix: string;
  db!: TestDatabase;
  api!: AppProcess;
  apiUrl!: string;
  schedulers: AppProcess[] = [];
  private readonly nodes: SimulatedNode[] = [];

  constructor(private readonly options: ClusterOptions) {
    this.prefix = uniqueRedisPrefix(options.label);
  }

  private get leaseGrace(): string {
    return String(this.options.leaseGraceMs ?? FAST_SCHEDULER_ENV['NODE_LEASE_GRACE_MS'] ?? '3000');
  }

  get redisUrl(): string {
    return testRedisUrl();
  }

  async start(): Promise<void> {
    this.db = await createTestDatabase({ label: this.options.label });
    const port = await freePort();
    this.apiUrl = `http://127.0.0.1:${port}`;
    const common = { DATABASE_URL: this.db.url, REDIS_URL: this.redisUrl, SECRETS_KEY: this.secretsKey };
    this.api = startApp('api', {
      ...common,
      PORT: String(port),
      OPERATOR_TOKEN: this.operatorToken,
      QUEUE_PREFIX: this.prefix,
      NODE_HEARTBEAT_INTERVAL_MS: '500',
      NODE_LEASE_GRACE_MS: this.leaseGrace,
      RATE_LIMIT_REQUESTS: '1000000',
      NODE_JOIN_RATE_LIMIT: '100000',
      LOG_LEVEL: 'warn',
    });
    for (let i = 0; i < this.options.schedulers; i++) {
      this.schedulers.push(
        startApp('scheduler', {
          ...common,
          QUEUE_PREFIX: this.prefix,
          ...FAST_SCHEDULER_ENV,
          NODE_LEASE_GRACE_MS: this.leaseGrace,
          ...this.options.schedulerEnv,
        }),
      );
    }
    await waitFor(async () => (await fetch(`${this.apiUrl}/readyz`)).ok, 60_000, 'the API to be ready');
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.nodes.map((node) => node.kill()));
    for (const app of [this.api, ...this.schedulers]) {
      if (app && app.child.exitCode === null) {
        app.child.kill('SIGTERM');
        if (!(await exitsWithin(app.exited, 10_000))) app.child.kill('SIGKILL');
      }
    }
    await flushRedisPrefix(this.redisUrl, this.prefix).catch(() => undefined);
    await this.db?.drop();
  }

  /** Everything the processes printed (for failure messages). */
  output(): string {
    return [this.api, ...this.schedulers]
      .map((app, i) => `--- ${i === 0 ? 'api' : `scheduler ${i}`}\n${app.output()}`)
      .join('\n');
  }

  async gql(token: string, query: string, variables?: object): Promise<GqlBody> {
    const response = await fetch(`${this.apiUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    return (await response.json()) as GqlBody;
  }

  /** gql that fails the test on any GraphQL error. */
  async ok(token: string, query: string, variables?: object): Promise<GqlBody['data']> {
    const body = await this.gql(token, query, variables);
    if (body.errors !== undefined) throw new Error(`GraphQL error: ${JSON.stringify(body.errors)}`);
    return body.data;
  }

  /** A tenant with a large quota; returns its id and owner token. */
  async tenant(slug: string, quota = { maxPods: 2000, maxVcpus: 4000, maxMemoryMiB: 4_000_000 }) {
    const created = await this.ok(
      this.operatorToken,
      'mutation($slug: String!) { createTenant(input: { slug: $slug, displayName: "T", ownerEmail: "o@t.example" }) { ownerToken tenant { id } } }',
      { slug },
    );
    const tenantId = created.createTenant.tenant.id as string;
    await this.ok(
      this.operatorToken,
      'mutation($id: ID!, $q: QuotaInput!) { updateTenantQuota(tenantId: $id, input: $q) { id } }',
      { id: tenantId, q: quota },
    );
    return { tenantId, token: created.createTenant.ownerToken as string };
  }

  /** Joins a node through the API with a fresh join token carrying `labels` and `taints`. */
  async join(
    name: string,
    capacity: Capacity,
    labels: Record<string, string> = {},
    taints: { key: string; value: string; effect: 'NoSchedule' | 'PreferNoSchedule' }[] = [],
  ): Promise<NodeJoinResponse> {
    const issued = await this.ok(
      this.operatorToken,
      'mutation($input: CreateNodeJoinTokenInput!) { createNodeJoinToken(input: $input) { token } }',
      { input: { labels: Object.entries(labels).map(([key, value]) => ({ key, value })), taints } },
    );
    const request = {
      token: issued.createNodeJoinToken.token as string,
      name,
      capacity: { ...capacity, diskBytes: 100 * 2 ** 30 },
      accelerator: 'TCG' as const,
    };
    // As an agent does: a join the API answers with "retry later" (5xx) is tried again; anything else fails.
    for (let attempt = 1; ; attempt++) {
      try {
        return await joinCluster(this.apiUrl, request);
      } catch (error) {
        if (!(error instanceof NodeJoinError) || error.status < 500 || attempt >= 3) {
          throw new Error(`join of ${name} failed: ${String(error)}\n--- api\n${this.api.output().slice(-3000)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
      }
    }
  }

  /** Joins and starts an in-process simulated node. */
  async node(
    name: string,
    capacity: Capacity,
    options: Partial<SimulatedNodeOptions> & { labels?: Record<string, string> } = {},
  ): Promise<{ identity: NodeJoinResponse; sim: SimulatedNode }> {
    const identity = await this.join(name, capacity, options.labels);
    const sim = this.simulate(identity, capacity, options);
    await sim.start();
    return { identity, sim };
  }

  simulate(identity: NodeJoinResponse, capacity: Capacity, options: Partial<SimulatedNodeOptions> = {}): SimulatedNode {
    const connection = new NodeConnection({ identity, redisUrl: this.redisUrl });
    const sim = new SimulatedNode(connection, {
      nodeId: identity.nodeId,
      epoch: identity.epoch,
      capacity: { ...capacity, diskBytes: 100 * 2 ** 30 },
      heartbeatIntervalMs: identity.heartbeatIntervalMs,
      resyncIntervalMs: 1_000,
      bootDelayMs: 20,
      ...options,
    });
    this.nodes.push(sim);
    return sim;
  }

  /** Rows straight from PostgreSQL (the test's own database). */
  async query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: this.db.url });
    await client.connect();
    try {
      return (await client.query(sql, params)).rows as T[];
    } finally {
      await client.end();
    }
  }
}

export { waitFor };
