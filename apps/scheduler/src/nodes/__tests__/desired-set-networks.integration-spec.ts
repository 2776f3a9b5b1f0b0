import { testPublisher, useBackends } from '../../__tests__/support/backends';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pino from 'pino';
import { networkPolicySpecSchema } from '@caas/network-policy-model';
import type { DesiredSet, Job } from '@caas/queue-contracts';
import { JobName, QueueName, jobOptionsFor, nodeKeys, parseDesiredSet } from '@caas/queue-contracts';
import { flushRedisPrefix, testRedisUrl, uniqueRedisPrefix } from '@caas/testing';
import { seedNode, seedPod, seedTenant } from '../../monitor/__tests__/seed';
import { PlacementWorker } from '../../placement/placement-worker';
import { gatewayOf, type DesiredSetPublisher } from '../desired-set-publisher';

jest.setTimeout(60_000);

const backends = useBackends('desired-set-networks', 8);
let prefix: string;
let publishers: DesiredSetPublisher[];
let closers: (() => Promise<unknown>)[];

beforeEach(async () => {
  await backends.db.pool.query('TRUNCATE events, outbox, pods, nodes, tenants, network_policies CASCADE');
  prefix = uniqueRedisPrefix('desired-networks');
  publishers = [];
  closers = [];
});

afterEach(async () => {
  await Promise.all([...publishers.map((p) => p.close()), ...closers.map((close) => close())]);
  await flushRedisPrefix(testRedisUrl(), prefix);
});

function publisher(): DesiredSetPublisher {
  const created = testPublisher(backends, prefix);
  publishers.push(created);
  return created;
}

async function storedSet(nodeId: string): Promise<DesiredSet> {
  const raw = await backends.redis.get(nodeKeys(nodeId, prefix).desiredSet);
  if (raw === null) throw new Error(`no set for ${nodeId}`);
  const parsed = parseDesiredSet(raw);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.set;
}

/** A READY node with a known name and, unless null, an underlay address. */
async function node(name: string, underlay: string | null): Promise<string> {
  const id = await seedNode(backends.db.pool);
  await backends.db.pool.query(`UPDATE nodes SET name = $2, "underlayAddress" = $3::inet WHERE id = $1`, [
    id,
    name,
    underlay,
  ]);
  return id;
}

async function tenant(subnet: string, egressDefault: 'ALLOW_NAT' | 'DENY' = 'ALLOW_NAT'): Promise<string> {
  const id = await seedTenant(backends.db.pool);
  await backends.db.pool.query(`UPDATE tenants SET subnet = $2, "egressDefault" = $3 WHERE id = $1`, [
    id,
    subnet,
    egressDefault,
  ]);
  return id;
}

async function pod(tenantId: string, nodeId: string | null, ip: string | undefined, labels = {}): Promise<string> {
  const id = await seedPod(backends.db.pool, { tenantId, nodeId, ip });
  await backends.db.pool.query(`UPDATE pods SET labels = $2 WHERE id = $1`, [id, JSON.stringify(labels)]);
  return id;
}

const ALLOW_WEB = {
  podSelector: { matchLabels: { app: 'db' } },
  policyTypes: ['INGRESS'],
  ingress: [
    {
      from: [{ podSelector: { matchLabels: { app: 'web' } } }],
      ports: [{ protocol: 'TCP', port: 5432, endPort: null }],
    },
  ],
  egress: [],
  deny: [],
};

async function policy(tenantId: string, name: string, spec: Record<string, unknown> = ALLOW_WEB): Promise<string> {
  const { rows } = await backends.db.pool.query<{ id: string }>(
    `INSERT INTO network_policies ("tenantId", name, "podSelector", "policyTypes", ingress, egress, deny, "updatedAt")
     VALUES ($1, $2, $3, $4::"PolicyType"[], $5, $6, $7, now()) RETURNING id`,
    [
      tenantId,
      name,
      JSON.stringify(spec['podSelector']),
      spec['policyTypes'],
      JSON.stringify(spec['ingress']),
      JSON.stringify(spec['egress']),
      JSON.stringify(spec['deny']),
    ],
  );
  return rows[0].id;
}

const versionOf = async (nodeId: string): Promise<string> =>
  (await backends.db.pool.query<{ v: string }>(`SELECT "desiredVersion"::text AS v FROM nodes WHERE id = $1`, [nodeId]))
    .rows[0].v;

/** What a placement does to the database: the pod on the node, the node's version bumped. */
async function place(podId: string, nodeId: string | null, from: string | null): Promise<void> {
  await backends.db.pool.query(`UPDATE pods SET "nodeId" = $2, placement = placement + 1 WHERE id = $1`, [
    podId,
    nodeId,
  ]);
  await backends.db.pool.query(`UPDATE nodes SET "desiredVersion" = "desiredVersion" + 1 WHERE id = ANY($1::uuid[])`, [
    [nodeId, from].filter((id): id is string => id !== null),
  ]);
}

describe('desired sets: tenant networks', () => {
  it('carries the tenant network with its policies, all its placed pods with node names, peers with VTEPs', async () => {
    const a = await node('host-a', '192.0.2.11');
    const b = await node('host-b', '192.0.2.12');
    const c = await node('host-c', null);
    await node('host-d', '192.0.2.14'); // no pods: only a VTEP
    const t = await tenant('10.1.0.0/16', 'DENY');
    const web = await pod(t, a, '10.1.0.2', { app: 'web' });
    const db = await pod(t, b, '10.1.0.3', { app: 'db' });
    const onC = await pod(t, c, '10.1.0.4', { app: 'web' });
    await pod(t, null, '10.1.0.5'); // not placed: in no network
    await pod(t, b, undefined); // no address yet: in no network
    await policy(t, 'allow-web');
    await policy(t, 'deny-all', {
      podSelector: { matchLabels: {} },
      policyTypes: ['INGRESS', 'EGRESS'],
      ingress: [],
      egress: [],
      deny: [],
    });

    await publisher().publish(a);
    const set = await storedSet(a);
    expect(set.vteps).toEqual(['192.0.2.12', '192.0.2.14']);
    expect(set.networks).toEqual([
      {
        tenantId: t,
        networkId: expect.any(Number),
        subnet: '10.1.0.0/16',
        gateway: '10.1.0.1',
        egressDefault: 'DENY',
        policies: [
          { name: 'allow-web', ...ALLOW_WEB },
          {
            name: 'deny-all',
            podSelector: { matchLabels: {} },
            policyTypes: ['INGRESS', 'EGRESS'],
            ingress: [],
            egress: [],
            deny: [],
          },
        ],
        pods: expect.arrayContaining([
          { podId: web, address: '10.1.0.2', labels: { app: 'web' }, node: 'host-a' },
          { podId: db, address: '10.1.0.3', labels: { app: 'db' }, node: 'host-b' },
          { podId: onC, address: '10.1.0.4', labels: { app: 'web' }, node: 'host-c' },
        ]),
        // host-c has no underlay address: its pod is no peer.
        peers: [{ podId: db, address: '10.1.0.3', vtep: '192.0.2.12' }],
      },
    ]);
    expect(set.networks?.[0].pods).toHaveLength(3);
    expect(set.networks?.[0].networkId).toBe(set.pods[0].network.vni);
    // The policies are what the compiler reads back.
    for (const { name, ...spec } of set.networks?.[0].policies ?? []) {
      expect([name, networkPolicySpecSchema.safeParse(spec).success]).toEqual([name, true]);
    }
  });

  it('gives two tenants on one node two entries, and leaves out a tenant whose stored policy does not parse', async () => {
    const a = await node('host-a', '192.0.2.11');
    const t1 = await tenant('10.1.0.0/24');
    const t2 = await tenant('10.1.0.0/24'); // tenants may overlap
    const t3 = await tenant('10.3.0.0/24');
    await pod(t1, a, '10.1.0.2');
    await pod(t2, a, '10.1.0.2');
    await pod(t3, a, '10.3.0.2');
    await policy(t3, 'broken', { ...ALLOW_WEB, ingress: [{ from: 'everyone', ports: [] }] });

    await publisher().publish(a);
    const set = await storedSet(a);
    expect(set.pods).toHaveLength(3);
    expect(set.networks?.map((n) => n.tenantId).sort()).toEqual([t1, t2].sort());
    expect(set.networks?.map((n) => n.gateway)).toEqual(['10.1.0.1', '10.1.0.1']);
    expect(new Set(set.networks?.map((n) => n.networkId)).size).toBe(2);
  });

  it('adds a peer to node A when a pod of the tenant is placed on node B, and drops it when the pod goes', async () => {
    const a = await node('host-a', '192.0.2.11');
    const b = await node('host-b', '192.0.2.12');
    const other = await node('host-c', '192.0.2.13');
    const t = await tenant('10.1.0.0/16');
    const u = await tenant('10.9.0.0/16');
    await pod(t, a, '10.1.0.2');
    await pod(u, other, '10.9.0.2');
    const published = publisher();
    await published.publishMany([a, b, other]);
    expect((await storedSet(a)).networks?.[0].peers).toEqual([]);
    const otherVersion = await versionOf(other);

    const moving = await pod(t, null, '10.1.0.3');
    await place(moving, b, null);
    await published.publishMany([b]);
    const setA = await storedSet(a);
    expect(setA.version).toBe(await versionOf(a));
    expect(setA.networks?.[0].peers).toEqual([{ podId: moving, address: '10.1.0.3', vtep: '192.0.2.12' }]);
    // A node without the tenant is left alone.
    expect(await versionOf(other)).toBe(otherVersion);
    expect((await storedSet(other)).version).toBe(otherVersion);

    // Labels change: A's copy of the tenant's pods follows.
    await backends.db.pool.query(`UPDATE pods SET labels = '{"app":"api"}' WHERE id = $1`, [moving]);
    await backends.db.pool.query(`UPDATE nodes SET "desiredVersion" = "desiredVersion" + 1 WHERE id = $1`, [b]);
    await published.publishMany([b]);
    expect((await storedSet(a)).networks?.[0].pods.find((p) => p.podId === moving)?.labels).toEqual({ app: 'api' });

    // The pod leaves B (its node lost, re-placed): A drops the peer even though B has no pod of the tenant left.
    await place(moving, null, b);
    await published.publishMany([b]);
    expect((await storedSet(b)).networks).toEqual([]);
    expect((await storedSet(a)).networks?.[0]).toMatchObject({ peers: [], pods: [expect.anything()] });
    expect(await versionOf(other)).toBe(otherVersion);
  });

  it('gives a node without a pod network no networks, and never bumps it for a tenant change', async () => {
    const a = await node('host-a', '192.0.2.11');
    const plain = await node('host-plain', null);
    const t = await tenant('10.1.0.0/16');
    await pod(t, a, '10.1.0.2');
    await pod(t, plain, '10.1.0.3');
    const published = publisher();
    await published.publishMany([a, plain]);
    expect(await storedSet(plain)).toMatchObject({ networks: [], vteps: [] });
    const plainVersion = await versionOf(plain);
    // A pod of the tenant placed on A changes the tenant's network: A's set follows, the plain node is left alone.
    const moving = await pod(t, null, '10.1.0.4');
    await place(moving, a, null);
    await published.publishMany([a]);
    expect((await storedSet(a)).networks?.[0].pods.map((p) => p.podId)).toContain(moving);
    expect(await versionOf(plain)).toBe(plainVersion);
  });

  it('shows a node joined with an underlay address in the other nodes\u2019 vteps', async () => {
    const a = await node('host-a', '192.0.2.11');
    await publisher().publish(a);
    expect((await storedSet(a)).vteps).toEqual([]);
    await node('host-new', '192.0.2.99');
    await backends.db.pool.query(`UPDATE nodes SET "desiredVersion" = "desiredVersion" + 1 WHERE id = $1`, [a]);
    await publisher().publish(a);
    expect((await storedSet(a)).vteps).toEqual(['192.0.2.99']);
  });

  it('republishes, on a network policy change, the sets of exactly the nodes with the tenant\u2019s pods', async () => {
    const a = await node('host-a', '192.0.2.11');
    const b = await node('host-b', '192.0.2.12');
    const other = await node('host-c', '192.0.2.13');
    const t = await tenant('10.1.0.0/16');
    const u = await tenant('10.9.0.0/16');
    await pod(t, a, '10.1.0.2');
    await pod(t, b, '10.1.0.3');
    await pod(u, other, '10.9.0.2');
    await publisher().publishMany([a, b, other]);
    const before = { a: await versionOf(a), b: await versionOf(b), other: await versionOf(other) };

    // Through the placement worker, as the outbox relay delivers the API's `network-policy.created`.
    const connection = new Redis(testRedisUrl(), { maxRetriesPerRequest: null });
    const worker = new PlacementWorker({
      pool: backends.db.pool,
      connection,
      prefix,
      log: pino({ level: 'silent' }),
      concurrency: 1,
      settings: { vmOverheadMiB: 256, topK: 3 },
      retryDelayMs: 60_000,
      publisher: publisher(),
    });
    const queue = new Queue(QueueName.Placement, { connection: backends.redis, prefix });
    closers.push(
      () => worker.close(),
      () => queue.close(),
      () => connection.quit(),
    );
    worker.start();
    await worker.waitUntilReady();
    const policyId = await policy(t, 'allow-web');
    const job: Job = {
      name: JobName.NetworkPolicyCreated,
      data: { outboxId: '1', tenantId: t, generation: 1, networkPolicyId: policyId, name: 'allow-web' },
    };
    await queue.add(job.name, job.data, jobOptionsFor(job));

    const deadline = Date.now() + 20_000;
    const hasPolicy = async (nodeId: string) => (await storedSet(nodeId)).networks?.[0].policies.length === 1;
    while (!(await hasPolicy(a)) || !(await hasPolicy(b))) {
      if (Date.now() > deadline) throw new Error('nodes A and B never got the policy');
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    for (const nodeId of [a, b]) {
      const set = await storedSet(nodeId);
      expect(BigInt(set.version)).toBeGreaterThan(BigInt(before[nodeId === a ? 'a' : 'b']));
      expect(set.networks?.[0].policies.map((p) => p.name)).toEqual(['allow-web']);
    }
    expect(await versionOf(other)).toBe(before.other);
    expect((await storedSet(other)).version).toBe(before.other);
  });
});

describe('gatewayOf', () => {
  it('is the first host address of the subnet', () => {
    expect(gatewayOf('10.0.0.0/16')).toBe('10.0.0.1');
    expect(gatewayOf('192.168.7.0/24')).toBe('192.168.7.1');
    expect(gatewayOf('172.16.255.128/25')).toBe('172.16.255.129');
    expect(gatewayOf('10.0.0.0/31')).toBeNull();
    expect(gatewayOf('300.0.0.0/8')).toBeNull();
    expect(gatewayOf('nonsense')).toBeNull();
  });
});
