import { randomUUID } from 'node:crypto';
import { GraphQLSchemaHost } from '@nestjs/graphql';
import type { GraphQLObjectType } from 'graphql';
import type { Cidr } from '@caas/ipv4';
import { formatAddress, parseAddress, parseCidr } from '@caas/ipv4';
import { SecretBox } from '@caas/security';
import { ContainerLoader } from '../pod/container.loader';
import { SECRET_PLACEHOLDER } from '../pod/dtos/pod.dto';
import {
  CREATE_POD,
  createNode,
  GET_POD,
  LIST_EVENTS,
  podInput,
  podMutation,
  rowCounts,
  setPod,
} from '../pod/__tests__/pod-fixtures';
import { podEnvSecretContext } from '@caas/security';
import type { CreatedTenant, Data, GqlResponse, TestApi } from './support/test-api';
import { dataOf, expectError, startTestApi } from './support/test-api';

let api: TestApi;
/** Every response of this file, to prove no secret value ever comes back. */
const responses: GqlResponse[] = [];
const SECRETS: string[] = [];

beforeAll(async () => {
  api = await startTestApi();
});

afterAll(async () => {
  await api?.close();
});

async function gql(query: string, variables: Record<string, unknown>, token: string): Promise<GqlResponse> {
  const response = await api.gql(query, variables, token);
  responses.push(response);
  return response;
}

/** createPod, its response kept for the leak scan. */
async function create(token: string, overrides: Record<string, unknown> = {}): Promise<Data> {
  return dataOf(await gql(CREATE_POD, { input: podInput(overrides) }, token)).createPod;
}

function newSecret(): string {
  const secret = `s3cr3t-${randomUUID()}`;
  SECRETS.push(secret);
  return secret;
}

/** Fewer fields than POD_FIELDS, so that a full page stays under the query cost limit. */
const LIST = `query ($first: Int, $after: String, $labelSelector: LabelSelectorInput) {
  pods(first: $first, after: $after, labelSelector: $labelSelector) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id name labels { key value } ip containers { name env { name value secret } } } }
  }
}`;

async function tenantSubnet(tenantId: string): Promise<Cidr> {
  const { subnet } = await api.prisma.tenant.findUniqueOrThrow({ where: { id: tenantId } });
  const cidr = parseCidr(subnet);
  if (cidr === null) throw new Error(`tenant subnet ${subnet} is not a CIDR`);
  return cidr;
}

describe('createPod', () => {
  let tenant: CreatedTenant;
  beforeAll(async () => {
    tenant = await api.createTenant();
    await api.prisma.tenant.update({ where: { id: tenant.tenantId }, data: { maxPods: 100, maxVcpus: 100 } });
  });

  it('creates a PENDING pod with its containers, an address of the subnet, an event and an outbox row', async () => {
    const secret = newSecret();
    const before = await rowCounts(api, tenant.tenantId);
    const input = podInput({
      name: 'web',
      labels: [
        { key: 'tier', value: 'front' },
        { key: 'app', value: 'web' },
        { key: 'example.com/team', value: '' },
      ],
      vcpus: 2,
      memoryMiB: 1024,
      restartPolicy: 'ON_FAILURE',
      containers: [
        {
          name: 'server',
          image: 'registry.example.com/team/server:1.4.2',
          command: ['/bin/server'],
          args: ['--port', '8080'],
          env: [
            { name: 'MODE', value: 'production' },
            { name: 'DB_PASSWORD', value: secret, secret: true },
          ],
          workingDir: '/srv',
          user: '1000:1000',
          cpuLimit: 1.5,
          memoryLimitMiB: 512,
        },
        { name: 'sidecar', image: `busybox@sha256:${'c'.repeat(64)}` },
      ],
    });
    const response = await gql(CREATE_POD, { input }, tenant.ownerToken);
    const pod = dataOf(response).createPod;
    expect(response.text).not.toContain(secret);
    expect(pod).toEqual({
      id: expect.any(String),
      name: 'web',
      labels: [
        { key: 'app', value: 'web' },
        { key: 'example.com/team', value: '' },
        { key: 'tier', value: 'front' },
      ],
      phase: 'PENDING',
      desiredState: 'RUNNING',
      reason: null,
      message: null,
      vcpus: 2,
      memoryMiB: 1024,
      restartPolicy: 'ON_FAILURE',
      ip: expect.any(String),
      nodeName: null,
      accelerator: null,
      imageDigests: [],
      generation: 1,
      observedGeneration: 0,
      createdAt: expect.any(String),
      scheduledAt: null,
      startedAt: null,
      finishedAt: null,
      containers: [
        {
          name: 'server',
          image: 'registry.example.com/team/server:1.4.2',
          command: ['/bin/server'],
          args: ['--port', '8080'],
          env: [
            { name: 'MODE', value: 'production', secret: false },
            { name: 'DB_PASSWORD', value: SECRET_PLACEHOLDER, secret: true },
          ],
          workingDir: '/srv',
          user: '1000:1000',
          cpuLimit: 1.5,
          memoryLimitMiB: 512,
          phase: 'WAITING',
          exitCode: null,
          signal: null,
          restartCount: 0,
          reason: null,
          startedAt: null,
          finishedAt: null,
        },
        expect.objectContaining({
          name: 'sidecar',
          image: `busybox@sha256:${'c'.repeat(64)}`,
          env: [],
          cpuLimit: null,
        }),
      ],
    });

    // The address: inside the subnet, past the network address and the gateway, recorded in ip_allocations.
    const subnet = await tenantSubnet(tenant.tenantId);
    const address = parseAddress(pod.ip);
    expect(address).not.toBeNull();
    expect(address).toBeGreaterThanOrEqual(subnet.base + 2);
    expect(address).toBeLessThan(subnet.base + 2 ** (32 - subnet.prefix) - 1);
    expect(await api.prisma.ipAllocation.findMany({ where: { podId: pod.id } })).toEqual([
      expect.objectContaining({ tenantId: tenant.tenantId, address: pod.ip, podId: pod.id }),
    ]);

    // Rows: one pod, two containers, one allocation, one outbox row and one event; quota charged.
    expect(await rowCounts(api, tenant.tenantId)).toEqual({
      pods: before.pods + 1,
      containers: before.containers + 2,
      ipAllocations: before.ipAllocations + 1,
      outbox: before.outbox + 1,
      events: before.events + 1,
      usedPods: before.usedPods + 1,
      usedVcpus: before.usedVcpus + 2,
      usedMemoryMiB: before.usedMemoryMiB + 1024,
    });
    const row = await api.prisma.pod.findUniqueOrThrow({ where: { id: pod.id } });
    expect(row).toMatchObject({ tenantId: tenant.tenantId, phase: 'PENDING', desiredState: 'RUNNING', generation: 1 });
    expect(row.labels).toEqual({ app: 'web', tier: 'front', 'example.com/team': '' });
    const containers = await api.prisma.container.findMany({ where: { podId: pod.id }, orderBy: { ordinal: 'asc' } });
    expect(containers.map((c) => [c.ordinal, c.name, c.cpuLimitMillis, c.memoryLimitMiB])).toEqual([
      [0, 'server', 1500, 512],
      [1, 'sidecar', null, null],
    ]);
    expect(await api.prisma.outboxMessage.findMany({ where: { aggregateId: pod.id } })).toEqual([
      expect.objectContaining({
        aggregateType: 'pod',
        tenantId: tenant.tenantId,
        generation: 1,
        kind: 'pod.created',
        sentAt: null,
      }),
    ]);
    const events = await api.prisma.event.findMany({ where: { podId: pod.id } });
    expect(events).toEqual([
      expect.objectContaining({ tenantId: tenant.tenantId, type: 'NORMAL', reason: 'Created', nodeId: null }),
    ]);
    expect(events[0].message).toContain('web');
    expect(events[0].message).toContain(pod.ip);
  });

  it('keeps secret env values sealed at rest, bound to tenant, pod, container and name', async () => {
    const secret = newSecret();
    const pod = await create(tenant.ownerToken, {
      containers: [
        {
          name: 'app',
          image: 'busybox',
          env: [
            { name: 'PLAIN', value: 'visible' },
            { name: 'API_KEY', value: secret, secret: true },
          ],
        },
      ],
    });
    const container = await api.prisma.container.findFirstOrThrow({ where: { podId: pod.id } });
    const env = container.env as { name: string; value?: string; secret?: boolean; ciphertext?: string }[];
    expect(env[0]).toEqual({ name: 'PLAIN', value: 'visible' });
    expect(Object.keys(env[1]).sort()).toEqual(['ciphertext', 'name', 'secret']);
    expect(env[1]).toMatchObject({ name: 'API_KEY', secret: true });

    const [{ json }] = await api.prisma.$queryRaw<{ json: string }[]>`
      SELECT row_to_json(c)::text AS json FROM containers c WHERE id = ${container.id}::uuid`;
    for (const form of [secret, Buffer.from(secret).toString('hex'), Buffer.from(secret).toString('base64')]) {
      expect(json).not.toContain(form);
    }
    const box = new SecretBox(api.config.secretsKey);
    const sealed = Buffer.from(env[1].ciphertext ?? '', 'base64');
    expect(box.open(sealed, podEnvSecretContext(tenant.tenantId, pod.id, 'app', 'API_KEY'))).toBe(secret);
    expect(() => box.open(sealed, podEnvSecretContext(randomUUID(), pod.id, 'app', 'API_KEY'))).toThrow();
    expect(() => box.open(sealed, podEnvSecretContext(tenant.tenantId, randomUUID(), 'app', 'API_KEY'))).toThrow();
    expect(() => box.open(sealed, podEnvSecretContext(tenant.tenantId, pod.id, 'app', 'OTHER'))).toThrow();
  });

  it('applies the defaults: no labels, ALWAYS, empty command, args and env', async () => {
    const pod = await create(tenant.ownerToken);
    expect(pod).toMatchObject({ labels: [], restartPolicy: 'ALWAYS' });
    expect(pod.containers[0]).toMatchObject({
      command: [],
      args: [],
      env: [],
      workingDir: null,
      user: null,
      cpuLimit: null,
      memoryLimitMiB: null,
    });
  });

  it('gives each pod the lowest free address, never one twice, and reuses a released one', async () => {
    const own = await api.createTenant();
    const { base } = await tenantSubnet(own.tenantId);
    const pods: Data[] = [];
    for (let i = 0; i < 4; i++) pods.push(await create(own.ownerToken));
    // .0 is the network address, .1 the tenant gateway.
    expect(pods.map((p) => p.ip)).toEqual([2, 3, 4, 5].map((offset) => formatAddress(base + offset)));

    dataOf(await gql(podMutation('deletePod'), { id: pods[1].id }, own.ownerToken));
    expect((await create(own.ownerToken)).ip).toBe(formatAddress(base + 3));
    expect((await create(own.ownerToken)).ip).toBe(formatAddress(base + 6));
    const addresses = (await api.prisma.ipAllocation.findMany({ where: { tenantId: own.tenantId } })).map(
      (a) => a.address,
    );
    expect(new Set(addresses).size).toBe(5);
  });

  it('refuses a name the tenant already uses with CONFLICT, writing nothing; another tenant may use it', async () => {
    await create(tenant.ownerToken, { name: 'taken' });
    const before = await rowCounts(api, tenant.tenantId);
    const response = await gql(CREATE_POD, { input: podInput({ name: 'taken' }) }, tenant.ownerToken);
    expectError(response, 'CONFLICT', 'POD_NAME_TAKEN');
    expect(response.body.errors?.[0].message).toContain('taken');
    expect(response.body.data).toBeNull();
    expect(await rowCounts(api, tenant.tenantId)).toEqual(before);

    const other = await api.createTenant();
    expect((await create(other.ownerToken, { name: 'taken' })).name).toBe('taken');
  });

  it('refuses with SUBNET_EXHAUSTED when no address is left, writing nothing', async () => {
    const { body } = await api.gql(
      `mutation ($input: CreateTenantInput!) { createTenant(input: $input) { tenant { id } ownerToken } }`,
      {
        input: {
          slug: `small-${randomUUID().slice(0, 8)}`,
          displayName: 'Small',
          ownerEmail: 'o@small.example',
          subnet: '10.77.0.16/28',
          quota: { maxPods: 50, maxVcpus: 100 },
        },
      },
      api.operatorToken,
    );
    const small = (body.data as Data).createTenant as { tenant: { id: string }; ownerToken: string };
    const ips: string[] = [];
    for (let i = 0; i < 13; i++) ips.push((await create(small.ownerToken, { memoryMiB: 64 })).ip);
    // A /28 has 16 addresses: network (.16), gateway (.17), broadcast (.31) are never a pod's.
    expect(ips).toEqual(Array.from({ length: 13 }, (_, i) => `10.77.0.${18 + i}`));

    const before = await rowCounts(api, small.tenant.id);
    const response = await gql(CREATE_POD, { input: podInput({ memoryMiB: 64 }) }, small.ownerToken);
    expectError(response, 'CONFLICT', 'SUBNET_EXHAUSTED');
    expect(await rowCounts(api, small.tenant.id)).toEqual(before);
  });

  it('refuses input the GraphQL types reject with BAD_USER_INPUT', async () => {
    const before = await rowCounts(api, tenant.tenantId);
    for (const input of [
      podInput({ vcpus: 1.5 }),
      podInput({ restartPolicy: 'SOMETIMES' }),
      podInput({ containers: [{ name: 'x' }] }),
      podInput({ containers: [{ name: 'x', image: 'busybox', env: [{ name: 'A' }] }] }),
    ]) {
      expectError(await gql(CREATE_POD, { input }, tenant.ownerToken), 'BAD_USER_INPUT');
    }
    expect(await rowCounts(api, tenant.tenantId)).toEqual(before);
  });
});

describe('pod and pods', () => {
  let tenant: CreatedTenant;
  beforeAll(async () => {
    tenant = await api.createTenant();
  });

  it('reads a pod by id with every field; NOT_FOUND for an unknown id, BAD_USER_INPUT for a malformed one', async () => {
    const created = await create(tenant.ownerToken, { labels: [{ key: 'app', value: 'db' }] });
    const viewer = await api.tokenWithRole(tenant.ownerToken, 'VIEWER');
    expect(dataOf(await gql(GET_POD, { id: created.id }, viewer)).pod).toEqual(created);
    expectError(await gql(GET_POD, { id: randomUUID() }, viewer), 'NOT_FOUND', 'POD_NOT_FOUND');
    expectError(await gql(GET_POD, { id: 'not-a-uuid' }, viewer), 'BAD_USER_INPUT', 'INVALID_ID');
  });

  it('shows the node a pod runs on by its name only', async () => {
    const pod = await create(tenant.ownerToken);
    const node = await createNode(api);
    await setPod(api, pod.id, {
      phase: 'RUNNING',
      node: { connect: { id: node.id } },
      nodeEpoch: 1,
      accelerator: 'TCG',
      imageDigests: { 'registry.example.com/team/app:1.0': `sha256:${'d'.repeat(64)}` },
      startedAt: new Date(),
    });
    const read = dataOf(await gql(GET_POD, { id: pod.id }, tenant.ownerToken)).pod;
    expect(read).toMatchObject({
      phase: 'RUNNING',
      nodeName: node.name,
      accelerator: 'TCG',
      imageDigests: [{ image: 'registry.example.com/team/app:1.0', digest: `sha256:${'d'.repeat(64)}` }],
    });
    const podType = api.app.get(GraphQLSchemaHost).schema.getType('Pod') as GraphQLObjectType;
    const fields = Object.keys(podType.getFields());
    expect(fields).toContain('nodeName');
    expect(fields.filter((field) => /node/i.test(field))).toEqual(['nodeName']);
    expect(fields).not.toContain('tenantId');
  });

  it('pages through the tenant pods, oldest first, loading all containers of a page in one batch', async () => {
    const own = await api.createTenant();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await create(own.ownerToken, { name: `p${i}` })).id);
    const loader = api.app.get(ContainerLoader);
    const batches = jest.spyOn(loader, 'loadBatch');
    try {
      const first = dataOf(await gql(LIST, { first: 3 }, own.ownerToken)).pods;
      expect(batches).toHaveBeenCalledTimes(1);
      expect(batches.mock.calls[0][0]).toHaveLength(3);
      expect(first.totalCount).toBe(5);
      expect(first.pageInfo.hasNextPage).toBe(true);
      expect(first.edges.map((e: Data) => e.node.name)).toEqual(['p0', 'p1', 'p2']);
      expect(first.edges.every((e: Data) => e.node.containers.length === 1)).toBe(true);
      const second = dataOf(await gql(LIST, { first: 3, after: first.pageInfo.endCursor }, own.ownerToken)).pods;
      expect(second.edges.map((e: Data) => e.node.id)).toEqual(ids.slice(3));
      expect(second.pageInfo).toEqual({ hasNextPage: false, endCursor: second.edges[1].cursor });
      expect(batches).toHaveBeenCalledTimes(2);
    } finally {
      batches.mockRestore();
    }
  });

  it('filters by a label selector: every label must match', async () => {
    const own = await api.createTenant();
    const label = (pairs: [string, string][]) => pairs.map(([key, value]) => ({ key, value }));
    await create(own.ownerToken, {
      name: 'web-a',
      labels: label([
        ['app', 'web'],
        ['env', 'prod'],
      ]),
    });
    await create(own.ownerToken, {
      name: 'web-b',
      labels: label([
        ['app', 'web'],
        ['env', 'dev'],
      ]),
    });
    await create(own.ownerToken, {
      name: 'db',
      labels: label([
        ['app', 'db'],
        ['example.com/x', ''],
      ]),
    });
    const names = async (matchLabels: { key: string; value: string }[]) => {
      const { pods } = dataOf(await gql(LIST, { first: 10, labelSelector: { matchLabels } }, own.ownerToken));
      expect(pods.totalCount).toBe(pods.edges.length);
      return pods.edges.map((e: Data) => e.node.name);
    };
    expect(await names(label([['app', 'web']]))).toEqual(['web-a', 'web-b']);
    expect(
      await names(
        label([
          ['app', 'web'],
          ['env', 'prod'],
        ]),
      ),
    ).toEqual(['web-a']);
    expect(await names(label([['example.com/x', '']]))).toEqual(['db']);
    expect(await names(label([['app', 'cache']]))).toEqual([]);
    expect(await names([])).toEqual(['web-a', 'web-b', 'db']);
    const bad = await gql(LIST, { labelSelector: { matchLabels: [{ key: 'bad key', value: 'x' }] } }, own.ownerToken);
    expectError(bad, 'BAD_USER_INPUT', 'INVALID_POD_INPUT');
    expect(bad.body.errors?.[0].message).toMatch(/^labelSelector\.matchLabels\[0\]\.key: /);
  });

  it('refuses page sizes above the maximum and invalid cursors', async () => {
    expectError(await gql(LIST, { first: 101 }, tenant.ownerToken), 'BAD_USER_INPUT');
    expectError(await gql(LIST, { after: 'garbage' }, tenant.ownerToken), 'BAD_USER_INPUT', 'INVALID_CURSOR');
  });
});

describe('events', () => {
  it("lists the tenant's events newest first, by pod, page by page", async () => {
    const own = await api.createTenant();
    const a = await create(own.ownerToken, { name: 'a' });
    const b = await create(own.ownerToken, { name: 'b' });
    dataOf(await gql(podMutation('stopPod'), { id: a.id }, own.ownerToken));
    dataOf(await gql(podMutation('startPod'), { id: a.id }, own.ownerToken));

    const viewer = await api.tokenWithRole(own.ownerToken, 'VIEWER');
    const all = dataOf(await gql(LIST_EVENTS, {}, viewer)).events;
    expect(all.totalCount).toBe(4);
    expect(all.edges.map((e: Data) => [e.node.reason, e.node.podId])).toEqual([
      ['StartRequested', a.id],
      ['Stopped', a.id],
      ['Created', b.id],
      ['Created', a.id],
    ]);
    expect(all.edges[0].node).toEqual({
      id: expect.stringMatching(/^\d+$/),
      type: 'NORMAL',
      reason: 'StartRequested',
      message: expect.stringContaining('a'),
      podId: a.id,
      createdAt: expect.any(String),
    });

    const ofA = dataOf(await gql(LIST_EVENTS, { podId: a.id, first: 2 }, viewer)).events;
    expect(ofA.totalCount).toBe(3);
    expect(ofA.edges.map((e: Data) => e.node.reason)).toEqual(['StartRequested', 'Stopped']);
    expect(ofA.pageInfo.hasNextPage).toBe(true);
    const rest = dataOf(
      await gql(LIST_EVENTS, { podId: a.id, first: 2, after: ofA.pageInfo.endCursor }, viewer),
    ).events;
    expect(rest.edges.map((e: Data) => e.node.reason)).toEqual(['Created']);
    expect(rest.pageInfo.hasNextPage).toBe(false);
  });

  it('refuses an unknown pod with NOT_FOUND and bad arguments with BAD_USER_INPUT', async () => {
    const own = await api.createTenant();
    expectError(await gql(LIST_EVENTS, { podId: randomUUID() }, own.ownerToken), 'NOT_FOUND', 'POD_NOT_FOUND');
    expectError(await gql(LIST_EVENTS, { podId: 'x' }, own.ownerToken), 'BAD_USER_INPUT', 'INVALID_ID');
    expectError(await gql(LIST_EVENTS, { after: 'x' }, own.ownerToken), 'BAD_USER_INPUT', 'INVALID_CURSOR');
    const foreign = Buffer.from(JSON.stringify([new Date().toISOString(), randomUUID()])).toString('base64url');
    expectError(await gql(LIST_EVENTS, { after: foreign }, own.ownerToken), 'BAD_USER_INPUT', 'INVALID_CURSOR');
    expectError(await gql(LIST_EVENTS, { first: 101 }, own.ownerToken), 'BAD_USER_INPUT');
  });
});

describe('tenant isolation', () => {
  let a: CreatedTenant;
  let b: CreatedTenant;
  let aPod: Data;

  beforeAll(async () => {
    a = await api.createTenant();
    b = await api.createTenant();
    aPod = await create(a.ownerToken, { name: 'a-secret-project' });
    await create(b.ownerToken, { name: 'b-pod' });
  });

  const snapshot = async () => ({
    pod: await api.prisma.pod.findUnique({ where: { id: aPod.id }, include: { containers: true, ipAllocation: true } }),
    counts: await rowCounts(api, a.tenantId),
  });

  it.each([
    ['pod', GET_POD],
    ['stopPod', podMutation('stopPod')],
    ['startPod', podMutation('startPod')],
    ['restartPod', podMutation('restartPod')],
    ['deletePod', podMutation('deletePod')],
  ])("answers NOT_FOUND to %s with A's pod id, and A's rows do not change", async (_name, query) => {
    const before = await snapshot();
    const response = await gql(query, { id: aPod.id }, b.ownerToken);
    expectError(response, 'NOT_FOUND', 'POD_NOT_FOUND');
    expect(response.body.data).toBeNull();
    expect(response.text).not.toContain('a-secret-project');
    expect(await snapshot()).toEqual(before);
  });

  it("answers NOT_FOUND to events(podId) with A's pod id", async () => {
    const response = await gql(LIST_EVENTS, { podId: aPod.id }, b.ownerToken);
    expectError(response, 'NOT_FOUND', 'POD_NOT_FOUND');
    expect(response.text).not.toContain('a-secret-project');
  });

  it("never lists A's pods or events to B", async () => {
    const pods = dataOf(await gql(LIST, { first: 100 }, b.ownerToken)).pods;
    expect(pods.edges.map((e: Data) => e.node.name)).toEqual(['b-pod']);
    expect(pods.totalCount).toBe(1);
    const events = dataOf(await gql(LIST_EVENTS, { first: 100 }, b.ownerToken)).events;
    expect(events.totalCount).toBe(1);
    expect(events.edges.map((e: Data) => e.node.message).join()).not.toContain('a-secret-project');
  });

  it('does not resolve containers of a pod id under another tenant (the loader keys carry the tenant)', async () => {
    const loader = api.app.get(ContainerLoader);
    expect(await loader.loadBatch([{ tenantId: b.tenantId, podId: aPod.id }])).toEqual([[]]);
    expect(await loader.loadBatch([{ tenantId: a.tenantId, podId: aPod.id }])).toEqual([[expect.anything()]]);
  });
});

describe('write-only secrets', () => {
  it('never returned a secret value in any response of this file, nor wrote one in clear', async () => {
    // One more pod with a secret, read through every path: pod, pods, containers, events, the mutations.
    const own = await api.createTenant();
    const secret = newSecret();
    const pod = await create(own.ownerToken, {
      containers: [{ name: 'c', image: 'busybox', env: [{ name: 'S', value: secret, secret: true }] }],
    });
    await gql(GET_POD, { id: pod.id }, own.ownerToken);
    await gql(LIST, { first: 10 }, own.ownerToken);
    await gql(LIST_EVENTS, { podId: pod.id }, own.ownerToken);
    await gql(podMutation('stopPod'), { id: pod.id }, own.ownerToken);
    await gql(podMutation('deletePod'), { id: pod.id }, own.ownerToken);
    await gql(LIST_EVENTS, {}, own.ownerToken);

    expect(SECRETS.length).toBe(3);
    expect(responses.length).toBeGreaterThan(30);
    for (const response of responses) for (const value of SECRETS) expect(response.text).not.toContain(value);

    const [{ dump }] = await api.prisma.$queryRaw<{ dump: string }[]>`
      SELECT concat_ws(' ',
        (SELECT string_agg(row_to_json(p)::text, ' ') FROM pods p),
        (SELECT string_agg(row_to_json(c)::text, ' ') FROM containers c),
        (SELECT string_agg(row_to_json(e)::text, ' ') FROM events e),
        (SELECT string_agg(row_to_json(o)::text, ' ') FROM outbox o)) AS dump`;
    for (const value of SECRETS) expect(dump).not.toContain(value);
  });
});
