import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { NodeConnection } from '@caas/node-client';
import { removeNodeUser } from '@caas/node-acl';
import type { NodeJoinResponse } from '@caas/queue-contracts';
import { NODE_JOIN_PATH, STATUS_FIELD, nodeAclUser, nodeJoinResponseSchema, nodeKeys } from '@caas/queue-contracts';
import { flushRedisPrefix, testRedisUrl, uniqueRedisPrefix } from '@caas/testing';
import { REDIS } from '../common/infra/tokens';
import type { TestApi } from './support/test-api';
import { dataOf, expectNoLeak, startTestApi, uniqueSlug } from './support/test-api';

const redisPrefix = uniqueRedisPrefix('node-join');
const base = redisPrefix.slice(0, -1);
let api: TestApi;
let redis: Redis;
const joinedNodeIds = new Set<string>();

beforeAll(async () => {
  api = await startTestApi({ QUEUE_PREFIX: base, NODE_JOIN_RATE_LIMIT: '1000000', NODE_HEARTBEAT_INTERVAL_MS: '1500' });
  redis = api.app.get<Redis>(REDIS);
});

afterAll(async () => {
  for (const nodeId of joinedNodeIds) await removeNodeUser(redis, nodeId).catch(() => undefined);
  await flushRedisPrefix(testRedisUrl(), redisPrefix);
  await api?.close();
});

const CREATE_JOIN_TOKEN = `mutation ($input: CreateNodeJoinTokenInput!) {
  createNodeJoinToken(input: $input) { token joinToken { id } }
}`;

async function createJoinToken(input: Record<string, unknown> = {}): Promise<{ token: string; id: string }> {
  const { createNodeJoinToken } = dataOf(await api.gql(CREATE_JOIN_TOKEN, { input }, api.operatorToken));
  return { token: createNodeJoinToken.token, id: createNodeJoinToken.joinToken.id };
}

const joinBody = (token: string, name = uniqueSlug('node')) => ({
  token,
  name,
  capacity: { vcpus: 16, memoryMiB: 65_536, pods: 50, diskBytes: 500_000_000_000 },
  underlayAddress: '192.0.2.10',
  accelerator: 'KVM',
});

interface JoinReply {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

async function join(body: unknown, app: TestApi = api): Promise<JoinReply> {
  const response = await app.http
    .post(NODE_JOIN_PATH)
    .set('content-type', 'application/json')
    .send(body as object);
  expectNoLeak(response.text);
  if (response.status === 201) joinedNodeIds.add((response.body as NodeJoinResponse).nodeId);
  return { status: response.status, body: response.body };
}

const aclUsers = async (): Promise<string[]> => (await redis.call('ACL', 'USERS')) as string[];
const tokenRow = (id: string) => api.prisma.nodeJoinToken.findUniqueOrThrow({ where: { id } });

function expectJoinError(reply: JoinReply, status: number, code: string): void {
  expect({ status: reply.status, code: reply.body?.error?.code }).toEqual({ status, code });
  expect(typeof reply.body.error.message).toBe('string');
  expect(Object.keys(reply.body)).toEqual(['error']);
}

describe('POST /v1/nodes/join', () => {
  it('exchanges a join token for a node, a credential and a working Redis user', async () => {
    const { token, id: tokenId } = await createJoinToken({
      labels: [{ key: 'zone', value: 'a' }],
      taints: [{ key: 'dedicated', value: 'gpu', effect: 'NO_SCHEDULE' }],
    });
    const name = uniqueSlug('node');
    const reply = await join(joinBody(token, name));
    expect(reply.status).toBe(201);
    const response = nodeJoinResponseSchema.parse(reply.body);
    const keys = nodeKeys(response.nodeId, base);
    expect(response).toEqual({
      nodeId: expect.any(String),
      name,
      epoch: 1,
      redis: { username: nodeAclUser(response.nodeId), password: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) },
      queuePrefix: keys.prefix,
      keys: { desiredSet: keys.desiredSet, status: keys.status },
      heartbeatIntervalMs: 1500,
      leaseGraceMs: 10_000,
    });

    const node = await api.prisma.node.findUniqueOrThrow({ where: { id: response.nodeId } });
    expect(node).toMatchObject({
      name,
      status: 'REGISTERED',
      labels: { zone: 'a' },
      taints: [{ key: 'dedicated', value: 'gpu', effect: 'NO_SCHEDULE' }],
      capacityVcpus: 16,
      capacityMemoryMiB: 65_536,
      capacityPods: 50,
      capacityDiskBytes: 500_000_000_000n,
      underlayAddress: '192.0.2.10',
      accelerator: 'KVM',
    });
    const expectedHash = createHash('sha256').update(response.redis.password).digest();
    expect(Buffer.from(node.credentialHash ?? []).equals(expectedHash)).toBe(true);
    expect(await tokenRow(tokenId)).toMatchObject({ usedAt: expect.any(Date), nodeId: response.nodeId });
    const events = await api.prisma.event.findMany({ where: { nodeId: response.nodeId } });
    expect(events.map((e) => e.reason)).toEqual(['NodeJoined']);
    expect(events[0]?.message).not.toContain(token);

    // The password is stored nowhere, and the user works as the node contract says.
    const dump = await api.prisma.$queryRawUnsafe<{ json: string }[]>(
      `SELECT row_to_json(n)::text AS json FROM nodes n WHERE id = '${response.nodeId}'`,
    );
    expect(dump[0]?.json).not.toContain(response.redis.password);
    expect(await aclUsers()).toContain(nodeAclUser(response.nodeId));
    const connection = new NodeConnection({ identity: response, redisUrl: testRedisUrl() });
    try {
      expect(await connection.readDesiredSet()).toBeNull();
      await connection.report({
        kind: 'heartbeat',
        epoch: 1,
        appliedVersion: '0',
        sentAt: new Date().toISOString(),
        capacity: { vcpus: 16, memoryMiB: 65_536, pods: 50, diskBytes: 0 },
        usage: { vcpus: 0, memoryMiB: 0, pods: 0, diskUsedBytes: 0, imageCacheBytes: 0 },
        diskPressure: false,
        accelerator: 'KVM',
        pods: [],
      });
      const entries = await redis.xrange(keys.status, '-', '+');
      expect(entries.map(([, fields]) => fields[0])).toEqual([STATUS_FIELD]);
    } finally {
      await connection.close();
    }

    // The same token again: refused, and no second node or user.
    const nodesBefore = await api.prisma.node.count();
    const usersBefore = (await aclUsers()).filter((u) => u.startsWith('node-')).length;
    const again = await join(joinBody(token));
    expectJoinError(again, 401, 'INVALID_JOIN_TOKEN');
    expect(await api.prisma.node.count()).toBe(nodesBefore);
    expect((await aclUsers()).filter((u) => u.startsWith('node-')).length).toBe(usersBefore);
  });

  it('gives one node for two concurrent joins with one token', async () => {
    const { token } = await createJoinToken();
    const replies = await Promise.all([join(joinBody(token)), join(joinBody(token))]);
    expect(replies.map((r) => r.status).sort()).toEqual([201, 401]);
    const winner = replies.find((r) => r.status === 201)?.body as NodeJoinResponse;
    const tokens = await api.prisma.nodeJoinToken.findMany({ where: { nodeId: winner.nodeId } });
    expect(tokens).toHaveLength(1);
  });

  it('refuses expired and unknown tokens with the same answer', async () => {
    const { token, id } = await createJoinToken();
    await api.prisma.nodeJoinToken.update({ where: { id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const expired = await join(joinBody(token));
    const garbage = await join(joinBody(`caasjoin_${'A'.repeat(43)}`));
    expectJoinError(expired, 401, 'INVALID_JOIN_TOKEN');
    expectJoinError(garbage, 401, 'INVALID_JOIN_TOKEN');
    expect(garbage.body.error.message).toBe(expired.body.error.message);
    expect(await tokenRow(id)).toMatchObject({ usedAt: null, nodeId: null });
  });

  it('answers an invalid body with 400 and the paths of the problems, writing nothing', async () => {
    const { token, id } = await createJoinToken();
    const nodesBefore = await api.prisma.node.count();
    const invalid = await join({ ...joinBody(token, 'Not_A_DNS_Label'), capacity: { vcpus: -1 }, labels: { x: 'y' } });
    expectJoinError(invalid, 400, 'BAD_REQUEST');
    expect(invalid.body.error.message).toEqual(expect.stringContaining('name'));
    expect(invalid.body.error.message).toEqual(expect.stringContaining('capacity.vcpus'));
    expect(invalid.body.error.message).toEqual(expect.stringContaining('capacity.memoryMiB'));
    // Labels come from the token, never from the node: an unknown key is refused.
    expect(invalid.body.error.message).toEqual(expect.stringContaining('labels'));
    expectJoinError(await join([]), 400, 'BAD_REQUEST');
    expect(await api.prisma.node.count()).toBe(nodesBefore);
    expect(await tokenRow(id)).toMatchObject({ usedAt: null });
  });

  it('refuses an underlay address that is no unicast IPv4 address with 400, writing nothing', async () => {
    const { token, id } = await createJoinToken();
    const nodesBefore = await api.prisma.node.count();
    const usersBefore = await aclUsers();
    for (const underlayAddress of [
      'not-an-ip',
      '2001:db8::1',
      '192.0.2.300',
      '0.0.0.0',
      '224.0.0.1',
      '255.255.255.255',
    ]) {
      const refused = await join({ ...joinBody(token), underlayAddress });
      expectJoinError(refused, 400, 'BAD_REQUEST');
      expect(refused.body.error.message).toEqual(expect.stringContaining('underlayAddress'));
    }
    expect(await api.prisma.node.count()).toBe(nodesBefore);
    expect(await tokenRow(id)).toMatchObject({ usedAt: null, nodeId: null });
    expect((await aclUsers()).filter((u) => !usersBefore.includes(u))).toEqual([]);
    // The token still works, with the address stored as given (or none at all).
    const joined = await join({ ...joinBody(token), underlayAddress: '198.51.100.23' });
    expect(joined.status).toBe(201);
    const rows = await api.prisma.$queryRaw<{ underlay: string }[]>`
      SELECT host("underlayAddress") AS underlay FROM nodes WHERE id = ${joined.body.nodeId}::uuid`;
    expect(rows).toEqual([{ underlay: '198.51.100.23' }]);
    const { underlayAddress: _omitted, ...withoutAddress } = joinBody((await createJoinToken()).token);
    const bare = await join(withoutAddress);
    expect(bare.status).toBe(201);
    expect(await api.prisma.node.findUniqueOrThrow({ where: { id: bare.body.nodeId } })).toMatchObject({
      underlayAddress: null,
    });
  });

  it('refuses a taken name with 409 and leaves the token unused', async () => {
    const first = await join(joinBody((await createJoinToken()).token));
    expect(first.status).toBe(201);
    const { token, id } = await createJoinToken();
    const usersBefore = await aclUsers();
    const taken = await join(joinBody(token, first.body.name));
    expectJoinError(taken, 409, 'NODE_NAME_TAKEN');
    expect(await tokenRow(id)).toMatchObject({ usedAt: null, nodeId: null });
    expect((await aclUsers()).filter((u) => !usersBefore.includes(u))).toEqual([]);
    // The token still works under another name.
    expect((await join(joinBody(token))).status).toBe(201);
  });

  it('answers 503 when Redis refuses the ACL user, and rolls everything back', async () => {
    const { token, id } = await createJoinToken();
    const name = uniqueSlug('node');
    const call = jest.spyOn(redis, 'call').mockRejectedValueOnce(new Error('Connection is closed.'));
    try {
      const reply = await join(joinBody(token, name));
      expectJoinError(reply, 503, 'UNAVAILABLE');
      expect(reply.body.error.message).not.toContain('Connection');
    } finally {
      call.mockRestore();
    }
    expect(await api.prisma.node.findUnique({ where: { name } })).toBeNull();
    expect(await tokenRow(id)).toMatchObject({ usedAt: null, nodeId: null });
    expect(await api.prisma.event.count({ where: { message: { contains: name } } })).toBe(0);
    // Once Redis is back, the same token joins.
    expect((await join(joinBody(token, name))).status).toBe(201);
  });

  it('limits join attempts per client address', async () => {
    const limited = await startTestApi({
      DATABASE_URL: api.databaseUrl,
      QUEUE_PREFIX: base,
      NODE_JOIN_RATE_LIMIT: '2',
    });
    try {
      const replies: JoinReply[] = [];
      for (let i = 0; i < 3; i++) replies.push(await join(joinBody(`caasjoin_${'B'.repeat(43)}`), limited));
      expectJoinError(replies[2] as JoinReply, 429, 'RATE_LIMITED');
    } finally {
      await limited.close();
    }
  });
});
