import pg from 'pg';
import { AuthException, AuthExceptionCode } from '../common/errors/common.exception';
import { PodService } from '../pod/pod.service';
import { CREATE_POD, createPod, podInput, podMutation, rowCounts } from '../pod/__tests__/pod-fixtures';
import type { CreatedTenant, GqlResponse, TestApi } from './support/test-api';
import { dataOf, expectError, firstError, startTestApi } from './support/test-api';

let api: TestApi;

beforeAll(async () => {
  // A pool large enough that both bursts below get connections; the tenant row lock is what is measured.
  api = await startTestApi({ DB_POOL_SIZE: '30' });
});

afterAll(async () => {
  await api?.close();
});

async function tenantWithQuota(quota: { maxPods?: number; maxVcpus?: number; maxMemoryMiB?: number }) {
  const tenant = await api.createTenant();
  await api.prisma.tenant.update({ where: { id: tenant.tenantId }, data: quota });
  return tenant;
}

const usage = async (tenantId: string) => {
  const { usedPods, usedVcpus, usedMemoryMiB } = await api.prisma.tenant.findUniqueOrThrow({ where: { id: tenantId } });
  return { usedPods, usedVcpus, usedMemoryMiB };
};

const burst = (tenant: CreatedTenant, count: number, prefix: string): Promise<GqlResponse[]> =>
  Promise.all(
    Array.from({ length: count }, (_, i) =>
      api.gql(CREATE_POD, { input: podInput({ name: `${prefix}-${i}`, memoryMiB: 64 }) }, tenant.ownerToken),
    ),
  );

describe('quota under concurrency', () => {
  it('creates exactly maxPods of 50 concurrent pods, and another tenant’s burst is not held behind it', async () => {
    const a = await tenantWithQuota({ maxPods: 10, maxVcpus: 1000, maxMemoryMiB: 1_000_000 });
    const b = await tenantWithQuota({ maxPods: 20, maxVcpus: 1000, maxMemoryMiB: 1_000_000 });
    const [aResponses, bResponses] = await Promise.all([burst(a, 50, 'a'), burst(b, 20, 'b')]);

    const outcomes = (responses: GqlResponse[]) =>
      responses.reduce<Record<string, number>>((acc, r) => {
        const key = r.body.errors ? `${firstError(r).code}/${firstError(r).reason}` : 'created';
        acc[key] = (acc[key] ?? 0) + 1;
        return acc;
      }, {});
    expect(outcomes(aResponses)).toEqual({ created: 10, 'QUOTA_EXCEEDED/POD_QUOTA_EXCEEDED': 40 });
    expect(outcomes(bResponses)).toEqual({ created: 20 });
    for (const r of aResponses.filter((r) => r.body.errors)) {
      expect(r.body.errors?.[0].message).toMatch(/pods \(10 of 10 used/);
    }

    expect(await usage(a.tenantId)).toEqual({ usedPods: 10, usedVcpus: 10, usedMemoryMiB: 640 });
    expect(await usage(b.tenantId)).toEqual({ usedPods: 20, usedVcpus: 20, usedMemoryMiB: 1280 });
    for (const tenant of [a, b]) {
      const allocations = await api.prisma.ipAllocation.findMany({ where: { tenantId: tenant.tenantId } });
      const pods = await api.prisma.pod.findMany({ where: { tenantId: tenant.tenantId } });
      expect(allocations).toHaveLength(pods.length);
      expect(new Set(allocations.map((x) => x.address)).size).toBe(pods.length);
      expect(new Set(pods.map((p) => p.ip)).size).toBe(pods.length);
      expect(await api.prisma.outboxMessage.count({ where: { tenantId: tenant.tenantId } })).toBe(pods.length);
      expect(await api.prisma.event.count({ where: { tenantId: tenant.tenantId } })).toBe(pods.length);
    }
  });

  it("creates B's pod while A's tenant row is locked: the lock serialises one tenant only", async () => {
    const a = await tenantWithQuota({ maxPods: 10 });
    const b = await tenantWithQuota({ maxPods: 10 });
    const client = new pg.Client({ connectionString: api.databaseUrl });
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE', [a.tenantId]);
      let aDone = false;
      const aCreate = api.gql(CREATE_POD, { input: podInput({ name: 'held' }) }, a.ownerToken).then((r) => {
        aDone = true;
        return r;
      });
      const bPod = dataOf(await api.gql(CREATE_POD, { input: podInput({ name: 'free' }) }, b.ownerToken)).createPod;
      expect(bPod.name).toBe('free');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(aDone).toBe(false);
      await client.query('COMMIT');
      expect(dataOf(await aCreate).createPod.name).toBe('held');
    } finally {
      await client.end();
    }
  });
});

describe('quota limits', () => {
  it.each([
    ['pods', { maxPods: 1 }, {}, /^Quota exceeded: pods \(1 of 1 used, the pod needs 1\)\.$/],
    ['vcpus', { maxVcpus: 3 }, { vcpus: 2 }, /^Quota exceeded: vcpus \(2 of 3 used, the pod needs 2\)\.$/],
    [
      'memoryMiB',
      { maxMemoryMiB: 1000 },
      { memoryMiB: 512 },
      /^Quota exceeded: memoryMiB \(512 of 1000 used, the pod needs 512\)\.$/,
    ],
  ])('refuses a pod beyond %s with QUOTA_EXCEEDED naming it, writing nothing', async (_l, quota, size, message) => {
    const tenant = await tenantWithQuota(quota);
    await createPod(api, tenant.ownerToken, size);
    const before = await rowCounts(api, tenant.tenantId);
    const response = await api.gql(CREATE_POD, { input: podInput(size) }, tenant.ownerToken);
    expectError(response, 'QUOTA_EXCEEDED', 'POD_QUOTA_EXCEEDED');
    expect(response.body.errors?.[0].message).toMatch(message);
    expect(await rowCounts(api, tenant.tenantId)).toEqual(before);
  });

  it('names every limit a pod exceeds', async () => {
    const tenant = await tenantWithQuota({ maxPods: 1, maxVcpus: 1, maxMemoryMiB: 128 });
    await createPod(api, tenant.ownerToken, { vcpus: 1, memoryMiB: 128 });
    const response = await api.gql(CREATE_POD, { input: podInput() }, tenant.ownerToken);
    expect(response.body.errors?.[0].message).toMatch(/pods .*; vcpus .*; memoryMiB /);
  });

  it('releases quota and address when a pod without a VM is deleted', async () => {
    const tenant = await tenantWithQuota({ maxPods: 2 });
    const first = await createPod(api, tenant.ownerToken, { vcpus: 2, memoryMiB: 256 });
    await createPod(api, tenant.ownerToken);
    expect(await usage(tenant.tenantId)).toEqual({ usedPods: 2, usedVcpus: 3, usedMemoryMiB: 384 });
    expectError(await api.gql(CREATE_POD, { input: podInput() }, tenant.ownerToken), 'QUOTA_EXCEEDED');

    dataOf(await api.gql(podMutation('deletePod'), { id: first.id }, tenant.ownerToken));
    expect(await usage(tenant.tenantId)).toEqual({ usedPods: 1, usedVcpus: 1, usedMemoryMiB: 128 });
    expect(await api.prisma.ipAllocation.findUnique({ where: { podId: first.id } })).toBeNull();
    expect((await createPod(api, tenant.ownerToken)).ip).toBe(first.ip);
  });

  it('keeps quota and address for a stopped pod, and starts it again at full quota', async () => {
    const tenant = await tenantWithQuota({ maxPods: 1 });
    const pod = await createPod(api, tenant.ownerToken);
    const stopped = dataOf(await api.gql(podMutation('stopPod'), { id: pod.id }, tenant.ownerToken)).stopPod;
    expect(stopped).toMatchObject({ phase: 'STOPPED', ip: pod.ip });
    expect(await usage(tenant.tenantId)).toEqual({ usedPods: 1, usedVcpus: 1, usedMemoryMiB: 128 });
    expect(await api.prisma.ipAllocation.findUniqueOrThrow({ where: { podId: pod.id } })).toMatchObject({
      address: pod.ip,
    });
    expectError(await api.gql(CREATE_POD, { input: podInput() }, tenant.ownerToken), 'QUOTA_EXCEEDED');

    const started = dataOf(await api.gql(podMutation('startPod'), { id: pod.id }, tenant.ownerToken)).startPod;
    expect(started).toMatchObject({ phase: 'PENDING', desiredState: 'RUNNING', ip: pod.ip });
    expect(await usage(tenant.tenantId)).toEqual({ usedPods: 1, usedVcpus: 1, usedMemoryMiB: 128 });
  });

  it('keeps quota and address while a pod with a VM is DELETING', async () => {
    const tenant = await tenantWithQuota({ maxPods: 1 });
    const pod = await createPod(api, tenant.ownerToken);
    await api.prisma.pod.update({ where: { id: pod.id }, data: { phase: 'RUNNING' } });
    const deleting = dataOf(await api.gql(podMutation('deletePod'), { id: pod.id }, tenant.ownerToken)).deletePod;
    expect(deleting).toMatchObject({ phase: 'DELETING', desiredState: 'DELETED' });
    expect(await usage(tenant.tenantId)).toEqual({ usedPods: 1, usedVcpus: 1, usedMemoryMiB: 128 });
    expect(await api.prisma.ipAllocation.findUnique({ where: { podId: pod.id } })).not.toBeNull();
    expectError(await api.gql(CREATE_POD, { input: podInput() }, tenant.ownerToken), 'QUOTA_EXCEEDED');
  });

  it('charges nothing to a tenant suspended after its request was authenticated', async () => {
    const tenant = await tenantWithQuota({ maxPods: 5 });
    await api.prisma.tenant.update({ where: { id: tenant.tenantId }, data: { status: 'SUSPENDED' } });
    const before = await rowCounts(api, tenant.tenantId);
    // The token check happens per request, before GraphQL; the service is reached here as if the request
    // had passed it just before the suspension committed.
    const attempt = api.app.get(PodService).create(tenant.tenantId, podInput() as never);
    await expect(attempt).rejects.toThrow(AuthException);
    await expect(attempt).rejects.toMatchObject({ code: AuthExceptionCode.TENANT_SUSPENDED });
    expect(await rowCounts(api, tenant.tenantId)).toEqual(before);
  });

  it('refuses new pods once a limit is lowered below usage, and evicts nothing', async () => {
    const tenant = await tenantWithQuota({ maxPods: 3 });
    await createPod(api, tenant.ownerToken);
    await createPod(api, tenant.ownerToken);
    dataOf(
      await api.gql(
        `mutation ($id: ID!) { updateTenantQuota(tenantId: $id, input: { maxPods: 1 }) { id } }`,
        { id: tenant.tenantId },
        api.operatorToken,
      ),
    );
    expectError(await api.gql(CREATE_POD, { input: podInput() }, tenant.ownerToken), 'QUOTA_EXCEEDED');
    expect(await api.prisma.pod.count({ where: { tenantId: tenant.tenantId } })).toBe(2);
  });
});
