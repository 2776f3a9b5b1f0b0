import { randomUUID } from 'node:crypto';
import type { Data, TestApi } from './support/test-api';
import { dataOf, expectError, startTestApi, uniqueSlug } from './support/test-api';

let api: TestApi;

beforeAll(async () => {
  api = await startTestApi();
});

afterAll(async () => {
  await api?.close();
});

const TENANT_FIELDS = `id slug displayName status suspendedAt subnet networkId egressDefault createdAt
  quota { maxPods maxVcpus maxMemoryMiB usedPods usedVcpus usedMemoryMiB }`;

const CREATE_TENANT = `mutation ($input: CreateTenantInput!) {
  createTenant(input: $input) { ownerToken tenant { ${TENANT_FIELDS} } }
}`;

const createTenant = (input: Record<string, unknown>) => api.gql(CREATE_TENANT, { input }, api.operatorToken);

const baseInput = (slug = uniqueSlug()) => ({
  slug,
  displayName: `Tenant ${slug}`,
  ownerEmail: `owner@${slug}.example`,
});

/** Row counts of everything createTenant writes. */
const counts = async () => ({
  tenants: await api.prisma.tenant.count(),
  members: await api.prisma.member.count(),
  apiTokens: await api.prisma.apiToken.count(),
  outbox: await api.prisma.outboxMessage.count(),
});

describe('tenant and quota (tenant token)', () => {
  it("returns the caller's tenant with its defaults", async () => {
    const { tenantId, slug, ownerToken } = await api.createTenant();
    const viewer = await api.tokenWithRole(ownerToken, 'VIEWER');
    const { tenant } = dataOf(await api.gql(`{ tenant { ${TENANT_FIELDS} } }`, undefined, viewer));
    expect(tenant).toEqual({
      id: tenantId,
      slug,
      displayName: `Tenant ${slug}`,
      status: 'ACTIVE',
      suspendedAt: null,
      subnet: expect.stringMatching(/^10\.\d+\.\d+\.0\/20$/),
      networkId: expect.any(Number),
      egressDefault: 'ALLOW_NAT',
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      quota: { maxPods: 10, maxVcpus: 16, maxMemoryMiB: 32768, usedPods: 0, usedVcpus: 0, usedMemoryMiB: 0 },
    });
  });

  it("returns the caller's quota and usage", async () => {
    const { tenantId, ownerToken } = await api.createTenant();
    await api.prisma.tenant.update({
      where: { id: tenantId },
      data: { usedPods: 2, usedVcpus: 3, usedMemoryMiB: 512 },
    });
    const { quota } = dataOf(
      await api.gql(
        '{ quota { maxPods maxVcpus maxMemoryMiB usedPods usedVcpus usedMemoryMiB } }',
        undefined,
        ownerToken,
      ),
    );
    expect(quota).toEqual({
      maxPods: 10,
      maxVcpus: 16,
      maxMemoryMiB: 32768,
      usedPods: 2,
      usedVcpus: 3,
      usedMemoryMiB: 512,
    });
  });
});

describe('createTenant', () => {
  it('creates the tenant, its OWNER member and an owner token that works at once', async () => {
    const input = { ...baseInput(), egressDefault: 'DENY', quota: { maxPods: 3, maxVcpus: 4, maxMemoryMiB: 2048 } };
    const { createTenant: created } = dataOf(await createTenant(input));
    expect(created.tenant).toMatchObject({
      slug: input.slug,
      displayName: input.displayName,
      status: 'ACTIVE',
      egressDefault: 'DENY',
      quota: { maxPods: 3, maxVcpus: 4, maxMemoryMiB: 2048, usedPods: 0 },
    });
    expect(created.ownerToken).toMatch(/^caas_[A-Za-z0-9_-]{43}$/);

    const members = await api.prisma.member.findMany({ where: { tenantId: created.tenant.id } });
    expect(members).toEqual([expect.objectContaining({ email: input.ownerEmail, role: 'OWNER' })]);
    const tokens = await api.prisma.apiToken.findMany({ where: { tenantId: created.tenant.id } });
    expect(tokens).toEqual([expect.objectContaining({ role: 'OWNER', memberId: members[0].id, revokedAt: null })]);

    const { viewer } = dataOf(await api.gql('{ viewer { kind role tenant { id } } }', undefined, created.ownerToken));
    expect(viewer).toEqual({ kind: 'TENANT', role: 'OWNER', tenant: { id: created.tenant.id } });
  });

  it('allocates a distinct network id and a distinct pool subnet to every tenant', async () => {
    const tenants = [];
    for (let i = 0; i < 4; i++) tenants.push(dataOf(await createTenant(baseInput())).createTenant.tenant);
    const networkIds = tenants.map((t) => t.networkId);
    const subnets = tenants.map((t) => t.subnet);
    expect(new Set(networkIds).size).toBe(4);
    expect(new Set(subnets).size).toBe(4);
    for (const t of tenants) {
      expect(t.networkId).toBeGreaterThan(0);
      // /20 blocks carved from the default pool 10.128.0.0/9.
      expect(t.subnet).toMatch(/^10\.(\d+)\.(\d+)\.0\/20$/);
      const [, second, third] = (/^10\.(\d+)\.(\d+)\./.exec(t.subnet) ?? []).map(Number);
      expect(second).toBeGreaterThanOrEqual(128);
      expect(third % 16).toBe(0);
    }
    // Unique across every tenant of the platform, not only these four.
    const all = await api.prisma.tenant.findMany({ select: { networkId: true } });
    expect(new Set(all.map((t) => t.networkId)).size).toBe(all.length);
  });

  it('honours an explicit subnet, in canonical form', async () => {
    const { tenant } = dataOf(await createTenant({ ...baseInput(), subnet: ' 192.168.40.0/24 ' })).createTenant;
    expect(tenant.subnet).toBe('192.168.40.0/24');
    expect((await api.prisma.tenant.findUniqueOrThrow({ where: { id: tenant.id } })).subnet).toBe('192.168.40.0/24');
  });

  it('refuses a duplicate slug with CONFLICT and writes nothing', async () => {
    const input = baseInput();
    dataOf(await createTenant(input));
    const before = await counts();

    const response = await createTenant({ ...input, displayName: 'Second', ownerEmail: 'other@example.com' });
    expectError(response, 'CONFLICT', 'SLUG_TAKEN');
    expect(response.body.data).toBeNull();
    expect(await counts()).toEqual(before);
    expect(await api.prisma.member.count({ where: { email: 'other@example.com' } })).toBe(0);
  });

  it.each([
    ['slug with capitals', { slug: 'Upper' }],
    ['slug starting with a digit', { slug: '1abc' }],
    ['slug ending with a hyphen', { slug: 'abc-' }],
    ['slug with an underscore', { slug: 'a_b' }],
    ['slug longer than 63', { slug: `a${'b'.repeat(63)}` }],
    ['empty slug', { slug: '' }],
    ['empty displayName', { displayName: '   ' }],
    ['displayName over 200', { displayName: 'x'.repeat(201) }],
    ['ownerEmail without @', { ownerEmail: 'owner.example.com' }],
    ['ownerEmail with a space', { ownerEmail: 'own er@example.com' }],
    ['subnet that is not a CIDR', { subnet: 'banana' }],
    ['subnet with host bits', { subnet: '10.20.1.5/16' }],
    ['public subnet', { subnet: '8.8.8.0/24' }],
    ['subnet wider than /16', { subnet: '10.0.0.0/8' }],
    ['subnet narrower than /28', { subnet: '10.0.0.0/29' }],
    ['negative quota', { quota: { maxPods: -1 } }],
    ['quota above its bound', { quota: { maxVcpus: 100_001 } }],
  ])('refuses a %s with BAD_USER_INPUT and writes nothing', async (_label, override) => {
    const before = await counts();
    const response = await createTenant({ ...baseInput(), ...override });
    expectError(response, 'BAD_USER_INPUT', 'INVALID_TENANT_INPUT');
    expect(response.body.data).toBeNull();
    expect(await counts()).toEqual(before);
  });
});

describe('tenants (operator)', () => {
  it('pages through every tenant with opaque cursors', async () => {
    for (let i = 0; i < 3; i++) await api.createTenant();
    const all = await api.prisma.tenant.findMany({ orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });

    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 100; page++) {
      const { tenants }: Data = dataOf(
        await api.gql(
          'query ($after: String) { tenants(first: 2, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id slug } } } }',
          { after },
          api.operatorToken,
        ),
      );
      expect(tenants.totalCount).toBe(all.length);
      expect(tenants.edges.length).toBeLessThanOrEqual(2);
      for (const edge of tenants.edges) {
        expect(edge.cursor).toMatch(/^[A-Za-z0-9_-]+$/);
        expect(edge.cursor).not.toContain(edge.node.id);
        seen.push(edge.node.id);
      }
      expect(tenants.pageInfo.endCursor).toBe(tenants.edges.at(-1)?.cursor ?? null);
      if (!tenants.pageInfo.hasNextPage) break;
      after = tenants.pageInfo.endCursor;
    }
    expect(seen).toEqual(all.map((t) => t.id));
  });

  it('refuses an invalid cursor with BAD_USER_INPUT', async () => {
    const response = await api.gql('{ tenants(after: "not-a-cursor") { totalCount } }', undefined, api.operatorToken);
    expectError(response, 'BAD_USER_INPUT', 'INVALID_CURSOR');
  });
});

describe('updateTenantQuota', () => {
  const UPDATE = `mutation ($id: ID!, $input: QuotaInput!) {
    updateTenantQuota(tenantId: $id, input: $input) { id quota { maxPods maxVcpus maxMemoryMiB } }
  }`;

  it('changes only the fields given, and records the change in the outbox', async () => {
    const { tenantId } = await api.createTenant();
    const { updateTenantQuota } = dataOf(
      await api.gql(UPDATE, { id: tenantId, input: { maxPods: 5 } }, api.operatorToken),
    );
    expect(updateTenantQuota).toEqual({ id: tenantId, quota: { maxPods: 5, maxVcpus: 16, maxMemoryMiB: 32768 } });

    const second = dataOf(
      await api.gql(UPDATE, { id: tenantId, input: { maxVcpus: 2, maxMemoryMiB: 1024 } }, api.operatorToken),
    ).updateTenantQuota;
    expect(second.quota).toEqual({ maxPods: 5, maxVcpus: 2, maxMemoryMiB: 1024 });

    const row = await api.prisma.tenant.findUniqueOrThrow({ where: { id: tenantId } });
    expect(row).toMatchObject({ maxPods: 5, maxVcpus: 2, maxMemoryMiB: 1024, generation: 3 });
    const outbox = await api.prisma.outboxMessage.findMany({
      where: { aggregateId: tenantId },
      orderBy: { id: 'asc' },
    });
    expect(outbox.map((m) => [m.kind, m.generation])).toEqual([
      ['tenant.quota-changed', 2],
      ['tenant.quota-changed', 3],
    ]);
  });

  it('refuses a negative limit with BAD_USER_INPUT and changes nothing', async () => {
    const { tenantId } = await api.createTenant();
    const response = await api.gql(UPDATE, { id: tenantId, input: { maxMemoryMiB: -1 } }, api.operatorToken);
    expectError(response, 'BAD_USER_INPUT', 'INVALID_TENANT_INPUT');
    expect(await api.prisma.tenant.findUniqueOrThrow({ where: { id: tenantId } })).toMatchObject({
      maxMemoryMiB: 32768,
      generation: 1,
    });
    expect(await api.prisma.outboxMessage.count({ where: { aggregateId: tenantId } })).toBe(0);
  });

  it('answers NOT_FOUND for an unknown tenant', async () => {
    const response = await api.gql(UPDATE, { id: randomUUID(), input: { maxPods: 1 } }, api.operatorToken);
    expectError(response, 'NOT_FOUND', 'TENANT_NOT_FOUND');
  });

  it('answers BAD_USER_INPUT for a malformed tenant id', async () => {
    const response = await api.gql(UPDATE, { id: 'tenant-1', input: { maxPods: 1 } }, api.operatorToken);
    expectError(response, 'BAD_USER_INPUT', 'INVALID_ID');
  });
});

describe('suspendTenant / unsuspendTenant', () => {
  const SUSPEND = 'mutation ($id: ID!) { suspendTenant(tenantId: $id) { id status suspendedAt } }';
  const UNSUSPEND = 'mutation ($id: ID!) { unsuspendTenant(tenantId: $id) { id status suspendedAt } }';

  it('refuses every token of a suspended tenant, records it in the outbox, and unsuspending restores them', async () => {
    const suspended = await api.createTenant();
    const bystander = await api.createTenant();
    const viewer = await api.tokenWithRole(suspended.ownerToken, 'VIEWER');

    const { suspendTenant } = dataOf(await api.gql(SUSPEND, { id: suspended.tenantId }, api.operatorToken));
    expect(suspendTenant).toEqual({ id: suspended.tenantId, status: 'SUSPENDED', suspendedAt: expect.any(String) });

    for (const token of [suspended.ownerToken, viewer]) {
      const response = await api.gql('{ viewer { kind } }', undefined, token);
      expect(response.status).toBe(401);
      expectError(response, 'UNAUTHENTICATED', 'TENANT_SUSPENDED');
      expect(response.body.data).toBeNull();
    }
    // Other tenants are untouched.
    expect(dataOf(await api.gql('{ tenant { status } }', undefined, bystander.ownerToken)).tenant.status).toBe(
      'ACTIVE',
    );

    const row = await api.prisma.tenant.findUniqueOrThrow({ where: { id: suspended.tenantId } });
    expect(row.status).toBe('SUSPENDED');
    const outbox = await api.prisma.outboxMessage.findMany({ where: { aggregateId: suspended.tenantId } });
    expect(outbox).toEqual([
      expect.objectContaining({
        aggregateType: 'tenant',
        tenantId: suspended.tenantId,
        kind: 'tenant.suspended',
        generation: row.generation,
        sentAt: null,
      }),
    ]);

    // Suspending again changes nothing and announces nothing.
    const again = dataOf(await api.gql(SUSPEND, { id: suspended.tenantId }, api.operatorToken)).suspendTenant;
    expect(again).toEqual(suspendTenant);
    expect(await api.prisma.outboxMessage.count({ where: { aggregateId: suspended.tenantId } })).toBe(1);

    const { unsuspendTenant } = dataOf(await api.gql(UNSUSPEND, { id: suspended.tenantId }, api.operatorToken));
    expect(unsuspendTenant).toEqual({ id: suspended.tenantId, status: 'ACTIVE', suspendedAt: null });
    for (const token of [suspended.ownerToken, viewer]) {
      expect(dataOf(await api.gql('{ tenant { id status } }', undefined, token))).toEqual({
        tenant: { id: suspended.tenantId, status: 'ACTIVE' },
      });
    }
    const after = await api.prisma.tenant.findUniqueOrThrow({ where: { id: suspended.tenantId } });
    const kinds = await api.prisma.outboxMessage.findMany({
      where: { aggregateId: suspended.tenantId },
      orderBy: { id: 'asc' },
    });
    expect(kinds.map((m) => [m.kind, m.generation])).toEqual([
      ['tenant.suspended', row.generation],
      ['tenant.unsuspended', after.generation],
    ]);
    expect(after.generation).toBe(row.generation + 1);
  });

  it('answers NOT_FOUND for an unknown tenant and BAD_USER_INPUT for a malformed id', async () => {
    expectError(await api.gql(SUSPEND, { id: randomUUID() }, api.operatorToken), 'NOT_FOUND', 'TENANT_NOT_FOUND');
    expectError(await api.gql(UNSUSPEND, { id: randomUUID() }, api.operatorToken), 'NOT_FOUND', 'TENANT_NOT_FOUND');
    expectError(await api.gql(SUSPEND, { id: 'nope' }, api.operatorToken), 'BAD_USER_INPUT', 'INVALID_ID');
  });

  it('suspends once when asked many times at once: one state change, one outbox row', async () => {
    const { tenantId } = await api.createTenant();
    const before = await api.prisma.tenant.findUniqueOrThrow({ where: { id: tenantId } });
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => api.gql(SUSPEND, { id: tenantId }, api.operatorToken)),
    );
    for (const answer of answers) expect(dataOf(answer).suspendTenant.status).toBe('SUSPENDED');
    const after = await api.prisma.tenant.findUniqueOrThrow({ where: { id: tenantId } });
    expect(after.generation).toBe(before.generation + 1);
    const outbox = await api.prisma.outboxMessage.findMany({ where: { aggregateId: tenantId } });
    expect(outbox.map((m) => [m.kind, m.generation])).toEqual([['tenant.suspended', after.generation]]);
  });

  it('leaves an active tenant alone when asked to unsuspend it', async () => {
    const { tenantId } = await api.createTenant();
    const { unsuspendTenant } = dataOf(await api.gql(UNSUSPEND, { id: tenantId }, api.operatorToken));
    expect(unsuspendTenant).toEqual({ id: tenantId, status: 'ACTIVE', suspendedAt: null });
    expect(await api.prisma.outboxMessage.count({ where: { aggregateId: tenantId } })).toBe(0);
  });
});
