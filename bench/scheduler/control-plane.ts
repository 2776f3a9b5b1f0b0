// A control plane for the benchmark (the same setup as the cluster e2e test, written again here: a bench may not
// import test/): the built API and N built scheduler processes on one fresh test database and one Redis prefix,
// plus simulated nodes that join through the API and speak the real node contract over their own Redis users.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { removeNodeUser } from '@caas/node-acl';
import { NodeConnection, joinCluster } from '@caas/node-client';
import type { SimulatedNodeOptions } from '@caas/node-simulator';
import { SimulatedNode } from '@caas/node-simulator';
import type { NodeJoinResponse } from '@caas/queue-contracts';
import { issueToken } from '@caas/security';
import type { TestDatabase } from '@caas/testing';
import { createTestDatabase, flushRedisPrefix, testRedisUrl, uniqueRedisPrefix } from '@caas/testing';
import type { AppProcess } from './support';
import { builtApp, freePort, graphql, log, onCleanup, startNode, waitFor } from './support';

export interface Capacity {
  vcpus: number;
  memoryMiB: number;
  pods: number;
}

export interface ControlPlaneOptions {
  label: string;
  /** Whether to start the API (phase b runs schedulers only). */
  api: boolean;
  schedulers: number;
  schedulerEnv: Record<string, string>;
  apiEnv?: Record<string, string>;
}

const SIM_DISK_BYTES = 100 * 2 ** 30;

export class ControlPlane {
  readonly operatorToken = issueToken().token;
  readonly secretsKey = randomBytes(32).toString('base64');
  readonly prefix: string;
  readonly redisUrl = testRedisUrl();
  db!: TestDatabase;
  pg!: Client;
  api: AppProcess | undefined;
  apiUrl = '';
  schedulers: AppProcess[] = [];
  readonly sims: SimulatedNode[] = [];
  private readonly joined: string[] = [];
  /** Errors the simulated nodes' Redis connections and BullMQ workers reported. */
  nodeErrors = 0;
  firstNodeError: string | undefined;
  /** This control plane's undo steps (also on the global clean-up list, which runs them on failure). */
  private readonly undo: (() => Promise<void>)[] = [];

  constructor(private readonly options: ControlPlaneOptions) {
    this.prefix = uniqueRedisPrefix(options.label);
  }

  get processes(): AppProcess[] {
    return [...(this.api ? [this.api] : []), ...this.schedulers];
  }

  /** Database and Redis first (their clean-ups run last), then the processes. */
  async start(): Promise<void> {
    this.db = await createTestDatabase({ label: this.options.label });
    this.register(`drop database (${this.options.label})`, () => this.db.drop());
    this.register(`flush Redis prefix ${this.prefix}`, async () => {
      await flushRedisPrefix(this.redisUrl, this.prefix);
    });
    this.register('remove the nodes’ Redis users', () => this.removeAclUsers());
    this.pg = new Client({ connectionString: this.db.url });
    await this.pg.connect();
    this.register('close pg client', () => this.pg.end().catch(() => undefined));
    const common = { DATABASE_URL: this.db.url, REDIS_URL: this.redisUrl, SECRETS_KEY: this.secretsKey };
    if (this.options.api) {
      const port = await freePort();
      this.apiUrl = `http://127.0.0.1:${port}`;
      this.api = startNode('api', [builtApp('api')], {
        ...common,
        PORT: String(port),
        OPERATOR_TOKEN: this.operatorToken,
        QUEUE_PREFIX: this.prefix,
        RATE_LIMIT_REQUESTS: '10000000',
        NODE_JOIN_RATE_LIMIT: '1000000',
        LOG_LEVEL: 'warn',
        NODE_ENV: 'production',
        ...this.options.apiEnv,
      });
    }
    for (let i = 0; i < this.options.schedulers; i++) {
      this.schedulers.push(
        startNode(`scheduler-${i + 1}`, [builtApp('scheduler')], {
          ...common,
          QUEUE_PREFIX: this.prefix,
          ...this.options.schedulerEnv,
        }),
      );
    }
    if (this.api) {
      await waitFor(
        'the API to be ready',
        async () => (await fetch(`${this.apiUrl}/readyz`)).ok,
        60_000,
        200,
        this.processes,
      );
    }
  }

  /** Waits until every scheduler logged that it runs (needs LOG_LEVEL ≤ info) or, at warn, just gives them time. */
  async schedulersRunning(): Promise<void> {
    if ((this.options.schedulerEnv['LOG_LEVEL'] ?? 'info') !== 'info') {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      return;
    }
    await waitFor(
      'the schedulers to run',
      async () => this.schedulers.every((s) => s.lines.some((l) => l.includes('"scheduler running'))),
      60_000,
      100,
      this.schedulers,
    );
  }

  /** SIGTERM to every process (they finish what is under way and log their stats), in parallel. */
  async stopProcesses(): Promise<void> {
    await Promise.all(this.sims.map((sim) => sim.kill()));
    await Promise.all(this.processes.map((p) => p.stop()));
  }

  /** A tenant with a quota large enough for the benchmark; returns its id and owner token. */
  async tenant(slug: string, maxPods: number): Promise<{ tenantId: string; token: string }> {
    const created = await graphql<{ createTenant: { ownerToken: string; tenant: { id: string } } }>(
      this.apiUrl,
      this.operatorToken,
      'mutation($slug: String!) { createTenant(input: { slug: $slug, displayName: "Bench", ownerEmail: "o@bench.example" }) { ownerToken tenant { id } } }',
      { slug },
    );
    const tenantId = created.createTenant.tenant.id;
    await graphql(
      this.apiUrl,
      this.operatorToken,
      'mutation($id: ID!, $q: QuotaInput!) { updateTenantQuota(tenantId: $id, input: $q) { id } }',
      { id: tenantId, q: { maxPods, maxVcpus: maxPods * 8, maxMemoryMiB: maxPods * 16_384 } },
    );
    return { tenantId, token: created.createTenant.ownerToken };
  }

  /** A join token from the operator, then `POST /v1/nodes/join` (`@caas/node-client`'s `joinCluster`). */
  async join(name: string, capacity: Capacity, labels: Record<string, string> = {}): Promise<NodeJoinResponse> {
    const issued = await graphql<{ createNodeJoinToken: { token: string } }>(
      this.apiUrl,
      this.operatorToken,
      'mutation($input: CreateNodeJoinTokenInput!) { createNodeJoinToken(input: $input) { token } }',
      { input: { labels: Object.entries(labels).map(([key, value]) => ({ key, value })) } },
    );
    const identity = await joinCluster(this.apiUrl, {
      token: issued.createNodeJoinToken.token,
      name,
      capacity: { ...capacity, diskBytes: SIM_DISK_BYTES },
      accelerator: 'TCG',
    });
    this.joined.push(identity.nodeId);
    return identity;
  }

  /** An in-process simulated node over the node's own Redis user; started, and killed by the clean-up. */
  async simulate(
    identity: NodeJoinResponse,
    capacity: Capacity,
    options: Partial<SimulatedNodeOptions> = {},
  ): Promise<SimulatedNode> {
    const connection = new NodeConnection({
      identity,
      redisUrl: this.redisUrl,
      onError: (error) => {
        this.nodeErrors++;
        this.firstNodeError ??= error.message;
      },
    });
    const sim = new SimulatedNode(connection, {
      nodeId: identity.nodeId,
      epoch: identity.epoch,
      capacity: { ...capacity, diskBytes: SIM_DISK_BYTES },
      heartbeatIntervalMs: identity.heartbeatIntervalMs,
      bootDelayMs: 20,
      ...options,
    });
    this.sims.push(sim);
    if (this.sims.length === 1) this.register('kill the simulated nodes', () => this.killSims());
    await sim.start();
    return sim;
  }

  /** Stops everything this control plane started and removes its database, Redis keys and users. */
  async close(): Promise<void> {
    await this.killSims();
    await Promise.all(this.processes.map((p) => p.stop()));
    for (const run of this.undo.splice(0).reverse()) await run();
  }

  private register(name: string, run: () => Promise<void>): void {
    this.undo.push(onCleanup(name, run));
  }

  async killSims(): Promise<void> {
    await Promise.allSettled(this.sims.map((sim) => sim.kill()));
  }

  async count(sql: string, params: unknown[] = []): Promise<number> {
    const { rows } = await this.pg.query<{ n: number }>(sql, params);
    return Number(rows[0]?.n ?? 0);
  }

  private async removeAclUsers(): Promise<void> {
    if (this.joined.length === 0) return;
    const redis = new Redis(this.redisUrl, { maxRetriesPerRequest: 2 });
    try {
      for (const nodeId of this.joined.splice(0)) await removeNodeUser(redis, nodeId);
    } finally {
      await redis.quit().catch(() => redis.disconnect());
    }
    log('removed the joined nodes’ Redis ACL users');
  }
}
